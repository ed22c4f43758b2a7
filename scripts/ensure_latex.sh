#!/usr/bin/env bash
# Make sure latexmk and the TeX Live packages the report needs are installed.
# Installs them with apt-get when that is possible (root on Debian/Ubuntu); otherwise stops with the command to run.
set -euo pipefail
# poppler-utils: pdftoppm, to look at the built pages as images (pdftoppm -r 70 -png report/main.pdf /tmp/page)
PACKAGES="latexmk texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-science poppler-utils"
if command -v latexmk >/dev/null 2>&1 && kpsewhich algorithmicx.sty makecell.sty >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "installing TeX Live for the report (about a minute): $PACKAGES"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
  exit 0
fi
echo "error: the report needs latexmk and TeX Live; install them with:" >&2
echo "  sudo apt-get install -y --no-install-recommends $PACKAGES" >&2
echo "(or your system's TeX Live packages providing latexmk, booktabs, makecell, algorithmicx and natbib)" >&2
exit 2
