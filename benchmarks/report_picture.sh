#!/usr/bin/env bash
# The picture of `gan-augment report` in README.md and docs/usage.md: the demo's run (scikit-learn's
# digits, 20 labels per class), its report, and a headless-Chromium screenshot of the page.
# Usage: benchmarks/report_picture.sh [WORK_DIR]   (needs Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d)}"
gan-augment demo --out "$work/demo" --quiet
gan-augment report "$work/demo/run" --out "$work/report.html" --overwrite
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,1300 \
  --screenshot="$work/report.png" "file://$(realpath "$work/report.html")" 2>/dev/null
python - "$work/report.png" docs/images/report.png <<'PY'
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").quantize(64).save(sys.argv[2], optimize=True)  # a small PNG for the docs
PY
echo "wrote docs/images/report.png (from $work/report.html)"
