# Sourced by cross/setup, cross/build and cross/test: maps ARCH (aarch64 | armhf) to Debian's
# names for it and sets TRIPLE, DEB_ARCH, QEMU, SYSROOT and BUILD_DIR.
cross_arch() {
  case "$1" in
    aarch64) TRIPLE=aarch64-linux-gnu DEB_ARCH=arm64 QEMU=qemu-aarch64 ;;
    armhf) TRIPLE=arm-linux-gnueabihf DEB_ARCH=armhf QEMU=qemu-arm ;;
    *)
      echo "usage: $0 aarch64|armhf (got '${1}')" >&2
      exit 2
      ;;
  esac
  ARCH="$1"
  # Packages that cannot be co-installed with their amd64 twins (see cross/setup).
  SYSROOT="${FLOTILLA_CROSS_SYSROOT:-/opt/flotilla-cross/$DEB_ARCH}"
  BUILD_DIR="${FLOTILLA_BUILD_DIR:-build-$ARCH}"
  export TRIPLE DEB_ARCH QEMU SYSROOT BUILD_DIR ARCH
}
