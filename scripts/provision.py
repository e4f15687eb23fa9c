#!/usr/bin/env python3
"""Provision a host or an image build stage for snekbox (see snekbox_provision); `--help`.

The Makefile and the Dockerfile run this file; the work is done by the `snekbox_provision`
package beside `snekbox/` in the checkout, importable here without snekbox's dependencies.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from snekbox_provision.cli import main

if __name__ == "__main__":
    sys.exit(main())
