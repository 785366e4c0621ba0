"""api/serve.py: granian configured as the service expects (its own lines in the service's log format)."""

from __future__ import annotations

import subprocess
import sys

import orjson

from api.serve import granian_log_config
from shared.config import Settings


def test_granians_own_lines_are_json_with_log_format_json():
    """granian's logger, configured as api/serve.py configures it, writes one JSON object per line on stderr."""
    script = (
        "import logging\n"
        "from granian.log import LogLevels, configure_logging\n"
        "from api.serve import granian_log_config\n"
        "from shared.config import Settings\n"
        "configure_logging(LogLevels.warning, granian_log_config(Settings(log_format='json')))\n"
        "logging.getLogger('_granian').error('Unexpected exit from worker-1')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    line = orjson.loads(done.stderr.strip().splitlines()[-1])
    assert (line["logger"], line["level"], line["message"]) == ("_granian", "ERROR", "Unexpected exit from worker-1")
    assert done.stdout == ""
    assert granian_log_config(Settings(log_format="text")) is None
