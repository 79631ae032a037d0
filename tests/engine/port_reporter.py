"""mitmdump addon for tests: print the port it listens on (listen-port 0)."""

from mitmproxy import ctx


class PortReporter:
    def running(self) -> None:
        for address in ctx.master.addons.get("proxyserver").listen_addrs():
            print(f"listening {address[1]}", flush=True)
            return


addons = [PortReporter()]
