"""``colorizer-app``: the same as ``streamlit run serve/app.py``, from anywhere.

Extra arguments go to ``streamlit run`` (``colorizer-app --server.port 8600``; a bigger
upload limit: ``--server.maxUploadSize 100``, in MB). Usage statistics are off by default:
family photos are nobody's business.
"""

import sys
from collections.abc import Sequence
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")
DEFAULTS = (
    "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
    "--server.maxUploadSize", "25",  # MB: .streamlit/config.toml's, the one upload limit
)  # fmt: skip


def streamlit_argv(args: Sequence[str]) -> list[str]:
    """The ``streamlit run`` command line for ``args`` (the user's options win)."""
    return ["streamlit", "run", str(APP), *DEFAULTS, *args]


def main(argv: Sequence[str] | None = None) -> int:
    from streamlit.web import cli

    sys.argv = streamlit_argv(sys.argv[1:] if argv is None else argv)
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
