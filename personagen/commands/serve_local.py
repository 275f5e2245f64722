"""`personagen serve-local`: the bundled model behind the OpenAI API until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading

import click

from personagen.commands.types import Count


@click.command("serve-local")
@click.option("--port", type=Count(0, 65535), default=8080, show_default=True, help="Port on 127.0.0.1 (0: any free port).")
@click.option("--threads", type=Count(1, 1024), default=None, help="CPU threads (default 2, 1 under CI).")
@click.option("--verbose", is_flag=True, help="Show the llama.cpp server log.")
def serve_local(port: int, threads: int | None, verbose: bool) -> None:
    """Serve the bundled SmolLM2 model over the OpenAI API until Ctrl-C (model name: smollm2)."""
    from personagen.llm import LOCAL_ALIAS, LocalServer

    if not 0 <= port <= 65535:
        from personagen.errors import BadInput

        raise BadInput(f"--port {port}: expected 0-65535")
    server = LocalServer(port=port, threads=threads, verbose=verbose)
    url = server.start()

    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:  # Ctrl-C or SIGTERM, whenever it comes after the start
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        click.echo(f"serving {LOCAL_ALIAS} at {url} (OpenAI API; model name {LOCAL_ALIAS!r}); Ctrl-C to stop")
        sys.stdout.flush()
        while not stop.wait(3600):
            pass
    finally:
        server.stop()
    click.echo("stopped", err=True)
