#!/usr/bin/env bash
# Build the vgps_interfaces messages and install them into a Python virtual environment that
# holds the ROS 2 Kilted wheels from PyPI (no ROS install, nothing to source afterwards).
#
# Usage: scripts/build_interfaces.sh [VENV]     (VENV defaults to <repo>/.venv)
#
# Plain cmake with the venv as both the CMake prefix path and the install prefix; build directory
# <repo>/build/vgps_interfaces. Skips the build when the installed messages come from the same
# sources (a hash of msg/, CMakeLists.txt and package.xml kept in the build directory), but always
# checks at the end, in fresh processes, that the venv's Python imports the messages and that the
# ament index finds the package. On a full ROS 2 install use colcon instead (see ros2_ws/).
set -euo pipefail

die() {
  echo "build_interfaces: error: $*" >&2
  exit 1
}
log() { echo "build_interfaces: $*"; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkg_dir="${repo_root}/src/vgps_interfaces"
build_dir="${repo_root}/build/vgps_interfaces"

case "${1:-}" in
  -h | --help)
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac
[[ $# -le 1 ]] || die "expected at most one argument (the venv), got $#; see --help"

venv="${1:-${repo_root}/.venv}"
[[ -d "${venv}" ]] || die "no virtual environment at '${venv}' (create it and install the ROS 2 wheels first)"
venv="$(cd "${venv}" && pwd)"
python="${venv}/bin/python"
[[ -x "${python}" ]] || die "'${python}' is not an executable Python interpreter"
[[ -f "${pkg_dir}/package.xml" ]] || die "package sources not found at ${pkg_dir}"

# Tools: name every missing one at once.
missing=()
command -v cmake >/dev/null 2>&1 || missing+=("cmake")
if [[ -n "${CXX:-}" ]]; then
  command -v "${CXX%% *}" >/dev/null 2>&1 || missing+=("a C++ compiler (CXX=${CXX} not found)")
elif ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 \
  && ! command -v clang++ >/dev/null 2>&1; then
  missing+=("a C++ compiler (g++ or clang++)")
fi
if [[ -n "${CC:-}" ]]; then
  command -v "${CC%% *}" >/dev/null 2>&1 || missing+=("a C compiler (CC=${CC} not found)")
elif ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1 \
  && ! command -v clang >/dev/null 2>&1; then
  missing+=("a C compiler (gcc or clang)")
fi
if ((${#missing[@]})); then
  die "missing build tools: $(printf '%s, ' "${missing[@]}" | sed 's/, $//')." \
    "On Debian/Ubuntu: apt-get install cmake g++ (ninja-build optional)"
fi

# The wheels this build needs (their CMake configs live in <venv>/share).
need_wheels=()
for pkg in ament_cmake ament_cmake_python rosidl_default_generators rosidl_core_generators \
  ament_cmake_ros_core std_msgs builtin_interfaces; do
  [[ -d "${venv}/share/${pkg}/cmake" ]] || need_wheels+=("ros-kilted-${pkg//_/-}")
done
if ((${#need_wheels[@]})); then
  die "the venv lacks ROS 2 build packages; install them with:" \
    "${python} -m pip install ${need_wheels[*]} catkin_pkg"
fi

# Run the venv's Python the way a fresh shell would: let the wheels' start-up hook set
# LD_LIBRARY_PATH itself (a guard variable leaked from another venv's process would skip it) and
# look the package up in this venv's ament index only.
venv_env=(env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE -u CMAKE_PREFIX_PATH "AMENT_PREFIX_PATH=${venv}")

verify() {
  "${venv_env[@]}" "${python}" -c "
from vgps_interfaces.msg import ActionCandidates, EpisodeStatus, ScoredCandidates, SelectedAction
from ament_index_python.packages import get_package_share_directory
for msg in (ActionCandidates, EpisodeStatus, ScoredCandidates, SelectedAction):
    msg.__class__.__import_type_support__()  # loads the compiled C typesupport libraries
    if msg._TYPE_SUPPORT is None:
        raise SystemExit('no typesupport for ' + msg.__name__)
get_package_share_directory('vgps_interfaces')
" 2>&1
}

if command -v sha256sum >/dev/null 2>&1; then
  hasher=(sha256sum)
else
  hasher=(shasum -a 256)
fi
generator="Unix Makefiles"
command -v ninja >/dev/null 2>&1 && generator="Ninja"

# What the installed result depends on: the sources, the target venv and the generator.
source_hash="$(
  cd "${pkg_dir}"
  {
    find msg -type f -name '*.msg' | LC_ALL=C sort | xargs "${hasher[@]}"
    "${hasher[@]}" CMakeLists.txt package.xml
    echo "venv=${venv}"
    echo "generator=${generator}"
  } | "${hasher[@]}" | cut -d' ' -f1
)"
stamp="${build_dir}/.vgps_build_stamp"

if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${source_hash}" \
  && -f "${venv}/share/vgps_interfaces/package.xml" ]] && verify >/dev/null; then
  log "up to date in ${venv} (sources unchanged); nothing to build"
else
  # A build directory configured for another venv or generator is not reusable.
  if [[ -f "${build_dir}/CMakeCache.txt" ]]; then
    cached_prefix="$(sed -n 's/^CMAKE_INSTALL_PREFIX:[A-Z]*=//p' "${build_dir}/CMakeCache.txt")"
    cached_generator="$(sed -n 's/^CMAKE_GENERATOR:[A-Z]*=//p' "${build_dir}/CMakeCache.txt")"
    if [[ "${cached_prefix}" != "${venv}" || "${cached_generator}" != "${generator}" ]]; then
      log "build directory was configured for ${cached_prefix} (${cached_generator}); starting afresh"
      rm -rf "${build_dir}"
    fi
  fi
  mkdir -p "${build_dir}"
  rm -f "${stamp}"
  log "building vgps_interfaces into ${venv} (${generator}, 2 jobs)"
  start=${SECONDS}
  "${venv_env[@]}" cmake -S "${pkg_dir}" -B "${build_dir}" -G "${generator}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="${venv}" \
    -DCMAKE_INSTALL_PREFIX="${venv}" \
    -DPython3_EXECUTABLE="${python}" \
    -DBUILD_TESTING=OFF
  "${venv_env[@]}" cmake --build "${build_dir}" -j2
  "${venv_env[@]}" cmake --install "${build_dir}"
  echo "${source_hash}" >"${stamp}"
  log "built and installed in $((SECONDS - start)) s"
fi

if ! output="$(verify)"; then
  rm -f "${stamp}"
  echo "${output}" >&2
  die "vgps_interfaces is installed in ${venv} but '${python} -c \"import vgps_interfaces.msg\"'" \
    "fails (see above)"
fi
log "ok: '${python}' imports vgps_interfaces.msg (typesupports load);" \
  "the ament index finds it with AMENT_PREFIX_PATH=${venv}"
