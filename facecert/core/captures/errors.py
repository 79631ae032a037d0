class CaptureError(Exception):
    """A capture file that cannot be read; the message says why, for a person."""
