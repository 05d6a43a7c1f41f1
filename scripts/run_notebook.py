"""Executes notebooks headless and fails if any cell raises (used by scripts/test.sh)."""

import sys

import nbclient
import nbformat


def main() -> None:
    for path in sys.argv[1:]:
        notebook = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3")
        client.execute()
        print(f"{path}: {len(notebook.cells)} cells ran without errors")


if __name__ == "__main__":
    main()
