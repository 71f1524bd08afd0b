#!/usr/bin/env bash
# Render `dvc plots show` offline and fail when a chart did not draw.
#
# DVC's plots page loads vega, vega-lite and vega-embed from a CDN and stays blank without the
# internet. This fetches the versions that page names (from the installed dvc-render) once from
# the npm registry into .cache/vega/, renders every plot of dvc.yaml with a page that loads them
# from beside itself (scripts/plots_offline.html, via --html-template), opens it in headless
# Chromium, counts the charts vega-embed drew (one <canvas> per plot) and takes a screenshot.
#
# Usage: scripts/render_plots.sh [OUT.png]   (default dvc_plots/plots.png; `make plots-check`)
# Needs: chromium (apt-get install -y chromium) and npm (apt-get install -y npm), dvc on PATH.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
png="$(realpath -m "${1:-dvc_plots/plots.png}")"
for tool in chromium npm dvc python; do
  command -v "$tool" >/dev/null || { echo "render_plots: $tool not found; install it (see README, Metrics and plots)" >&2; exit 2; }
done

# The libraries, at the versions dvc-render's own page would load.
libs=".cache/vega"
mkdir -p "$libs"
specs=$(python -c 'import re; from dvc_render.vega import VegaRenderer as R; print(*re.findall(r"npm/([a-z-]+@[0-9.]+)", R.SCRIPTS))')
for spec in $specs; do
  name="${spec%@*}"
  if [ ! -s "$libs/$spec/$name.min.js" ]; then
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "$spec" >/dev/null && tar -xzf ./*.tgz package/build/"$name".min.js)
    mkdir -p "$libs/$spec" && mv "$tmp/package/build/$name.min.js" "$libs/$spec/" && rm -rf "$tmp"
  fi
done

page="dvc_plots"
rm -rf "$page"
# DVC only warns about a plot whose data it cannot read, and draws it empty: fail instead.
if dvc plots show --html-template scripts/plots_offline.html -o "$page" 2>&1 >/dev/null | grep -i "failed"; then
  echo "FAIL: dvc plots show could not read every plot's data (dvc plots show -v says which)" >&2
  exit 1
fi
for spec in $specs; do cp "$libs/$spec/${spec%@*}.min.js" "$page/"; done
expected=$(grep -c "vegaEmbed(" "$page/index.html")

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
browse() {
  chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
    --virtual-time-budget=15000 "$@" "file://$repo/$page/index.html" 2>/dev/null
}
drawn=$(browse --dump-dom | grep -o "<canvas" | wc -l)
mkdir -p "$(dirname "$png")"
browse --window-size=1100,$(( (expected + 1) / 2 * 420 + 40 )) --screenshot="$png" >/dev/null
if [ "$drawn" -ne "$expected" ] || [ "$expected" -eq 0 ]; then
  echo "FAIL: $drawn of $expected charts drew in $page/index.html" >&2
  exit 1
fi
echo "ok: $drawn of $expected charts drew offline; screenshot $png"
