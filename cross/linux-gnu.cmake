# Shared part of the toolchain files here (aarch64-linux-gnu.cmake, arm-linux-gnueabihf.cmake),
# which set FLOTILLA_CROSS_TRIPLE, FLOTILLA_CROSS_DEB_ARCH, FLOTILLA_CROSS_QEMU and
# CMAKE_SYSTEM_PROCESSOR first.
#
# Debian's cross compiler (g++-<triple>) with the target's libraries installed multiarch
# (/usr/lib/<triple>, /usr/include/<triple>, see cross/setup), plus a small sysroot for the few
# packages that cannot be co-installed with their amd64 twins ($FLOTILLA_CROSS_SYSROOT, default
# /opt/flotilla-cross/<deb-arch>). Build tools (protoc) come from the host. Tests run under
# qemu-user: ctest and gtest_discover_tests go through CMAKE_CROSSCOMPILING_EMULATOR.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${FLOTILLA_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${FLOTILLA_CROSS_TRIPLE}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${FLOTILLA_CROSS_TRIPLE})

if(DEFINED ENV{FLOTILLA_CROSS_SYSROOT})
  set(FLOTILLA_CROSS_SYSROOT $ENV{FLOTILLA_CROSS_SYSROOT})
else()
  set(FLOTILLA_CROSS_SYSROOT /opt/flotilla-cross/${FLOTILLA_CROSS_DEB_ARCH})
endif()
if(NOT EXISTS ${FLOTILLA_CROSS_SYSROOT}/usr/lib/${FLOTILLA_CROSS_TRIPLE})
  message(FATAL_ERROR "Failed to find the cross sysroot '${FLOTILLA_CROSS_SYSROOT}': "
                      "run cross/setup first")
endif()

# Libraries, headers and CMake packages only from the target's directories; programs (protoc)
# from the host. "/" stands for the multiarch paths: with CMAKE_LIBRARY_ARCHITECTURE set, find_*
# look in /usr/lib/<triple> before /usr/lib, and /usr/lib/x86_64-linux-gnu is never searched.
set(CMAKE_FIND_ROOT_PATH /usr/${FLOTILLA_CROSS_TRIPLE} ${FLOTILLA_CROSS_SYSROOT} /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config (libzstd in ota/) reads the target's .pc files only.
set(ENV{PKG_CONFIG_LIBDIR}
    "/usr/lib/${FLOTILLA_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig:${FLOTILLA_CROSS_SYSROOT}/usr/lib/${FLOTILLA_CROSS_TRIPLE}/pkgconfig")

# The target's dynamic loader and libc are installed multiarch too (libc6:<deb-arch>, e.g.
# /lib/ld-linux-aarch64.so.1), so qemu needs no -L. With -L /usr/<triple> (the cross toolchain's
# libc), qemu-user 7.2 breaks fork(): the child spins forever on aarch64 and dies of SIGSEGV on
# armhf, before it reaches exec; the tests fork their peers (mosquitto, runc, ...).
set(CMAKE_CROSSCOMPILING_EMULATOR ${FLOTILLA_CROSS_QEMU})
