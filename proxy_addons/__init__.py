"""facecert between a real device and a real server: a mitmproxy addon.

``facecert_addon.py`` is the file to give ``mitmdump -s`` / ``mitmweb -s``;
``facecert proxy`` runs mitmdump with it in reverse-proxy mode. This package
imports nothing heavy on purpose: the facecert CLI imports ``proxy_addons.cli``.
"""
