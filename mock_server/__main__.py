"""``python -m mock_server serve|export``: the same commands as ``facecert
serve`` / ``facecert export``, without loading the other peers."""

import typer

from facecert.mock_server.cli import register

app = typer.Typer(add_completion=False, no_args_is_help=True, help="facecert mock platform server")
register(app)

if __name__ == "__main__":
    app()
