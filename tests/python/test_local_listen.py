"""`shardfusion local` on an address the coordinator refuses exits with that error.

Without a password the coordinator serves loopback only. `local` used to print a URL and stay
up with no coordinator behind it, because the refusal happened in a background task.
"""

import subprocess

from conftest import binary, free_port


def test_local_on_a_non_loopback_address_exits_with_the_error(tmp_path):
    port = free_port()
    try:
        done = subprocess.run(
            [binary(), "local", "--workers", "1", "--listen", f"0.0.0.0:{port}",
             "--data-dir", str(tmp_path / "cluster")],
            capture_output=True, text=True, timeout=60,
        )
    except subprocess.TimeoutExpired as stayed_up:
        raise AssertionError(
            f"`shardfusion local --listen 0.0.0.0:{port}` was still running after 60 s; "
            f"it printed: {stayed_up.stdout!r}"
        ) from None
    assert done.returncode != 0, done.stdout
    assert "refusing to listen on 0.0.0.0" in done.stderr, done.stderr
    assert "loopback" in done.stderr, done.stderr
    # No URL is offered for a coordinator that does not exist.
    assert "Flight SQL URL" not in done.stdout, done.stdout
