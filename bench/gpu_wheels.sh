#!/usr/bin/env bash
# Wheels for the GPU machine's Python 3.12, which lacks pycocotools and albumentations (and
# what they need beyond its own packages): into .whl/, ignored by git, carried by the device call.
#   bash bench/gpu_wheels.sh
set -euo pipefail
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PLATFORMS=()
for n in 2_28 2_27 2_17 2014 1; do
  case $n in 2014) PLATFORMS+=(--platform manylinux2014_x86_64) ;; 1) PLATFORMS+=(--platform manylinux1_x86_64) ;;
    *) PLATFORMS+=(--platform "manylinux_${n}_x86_64") ;; esac
done
for n in 24 31 34 35; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl pycocotools==2.0.11 albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.4 \
  pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0 \
  stringzilla==5.3.2 simsimd==6.5.16  # the versions this project's venv runs (albumentations pins albucore)
ls -la .whl
