# CMake toolchain file: 64-bit ARM (Debian arm64), e.g. Raspberry Pi 4/5, Jetson, i.MX8.
# cmake -S . -B build-aarch64 --toolchain cross/aarch64-linux-gnu.cmake (cross/build does this).
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(FLOTILLA_CROSS_TRIPLE aarch64-linux-gnu)
set(FLOTILLA_CROSS_DEB_ARCH arm64)
set(FLOTILLA_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu.cmake)
