"""``python -m mock_server.reader_worker``: the process that reads big bodies
for :class:`mock_server.offload.Reader` (a module of its own, which the
package does not import, so running it imports nothing twice)."""

import sys

from facecert.mock_server.offload import serve_reads

if __name__ == "__main__":
    serve_reads(sys.stdin.buffer, sys.stdout.buffer)
