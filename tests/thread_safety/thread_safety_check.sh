#!/usr/bin/env bash
# Checks that clang's thread-safety analysis sees our annotations: the GOOD
# variant of misuse.cpp compiles with -Wthread-safety -Werror, each BAD one
# is refused. Usage: thread_safety_check.sh CLANGXX SOURCE_DIR
set -euo pipefail
cxx="$1" src="$2"
flags=(-std=c++20 -fsyntax-only -Wthread-safety -Werror -I"$src/src")
file="$src/tests/thread_safety/misuse.cpp"
"$cxx" "${flags[@]}" -DCHECK_GOOD "$file" || { echo "FAIL: the correct variant was refused"; exit 1; }
for bad in CHECK_BAD_UNLOCKED_WRITE CHECK_BAD_REQUIRES CHECK_BAD_WAIT; do
  if out=$("$cxx" "${flags[@]}" -D"$bad" "$file" 2>&1); then
    echo "FAIL: $bad compiled: the thread-safety annotations are not checked"
    exit 1
  fi
  if ! grep -q -- "-Wthread-safety" <<<"$out"; then
    echo "FAIL: $bad was refused for another reason:"; echo "$out"; exit 1
  fi
  echo "ok: $bad refused"
done
echo "thread-safety analysis: 3 misuses refused, correct use accepted"
