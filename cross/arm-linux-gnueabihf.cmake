# CMake toolchain file: 32-bit ARM, hard float (Debian armhf: ARMv7-A, VFPv3-D16, Thumb-2), e.g.
# Raspberry Pi 2/3 on a 32-bit OS, BeagleBone, i.MX6.
# cmake -S . -B build-armhf --toolchain cross/arm-linux-gnueabihf.cmake (cross/build does this).
set(CMAKE_SYSTEM_PROCESSOR arm)
set(FLOTILLA_CROSS_TRIPLE arm-linux-gnueabihf)
set(FLOTILLA_CROSS_DEB_ARCH armhf)
set(FLOTILLA_CROSS_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu.cmake)
