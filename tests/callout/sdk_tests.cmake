# Tests of the proxy SDK (redirect/sio.h) and of the callout ABI.
# Included from tests/callout/CMakeLists.txt (AUTOMOC is on there).

# The behaviour table of redirect_ioctl() against a live callout: queries and SET (tst_sio), bad
# requests, rights, no callout and overlapped calls (tst_sio_errors).
redirect_test(tst_sio SOURCES tst_sio.cpp sio_fixtures.h LIBS redirect_kernel_test Redirect::sio LABELS kernel)
redirect_test(tst_sio_errors SOURCES tst_sio_errors.cpp sio_fixtures.h
  LIBS redirect_kernel_test Redirect::sio LABELS kernel)

# Struct layouts in the BPF object's BTF against the host compiler's.
redirect_test(tst_abi_layout SOURCES tst_abi_layout.cpp LIBS PkgConfig::LIBBPF Redirect::callout)
target_compile_definitions(tst_abi_layout PRIVATE CALLOUT_BPF_OBJECT="${CALLOUT_BPF_OBJECT}"
  CALLOUT_ABI_HEADER="${PROJECT_SOURCE_DIR}/callout/callout_abi.h")
add_dependencies(tst_abi_layout callout_skel_gen)

# The SDK from Python ctypes.
redirect_test(tst_sdk_ctypes SOURCES tst_sdk_ctypes.cpp sdk_ctypes.py
  LIBS redirect_kernel_test Redirect::sio LABELS kernel)
target_compile_definitions(tst_sdk_ctypes PRIVATE
  REDIRECT_SIO_LIBRARY="$<TARGET_FILE:redirect_sio>"
  SDK_CTYPES_SCRIPT="${CMAKE_CURRENT_SOURCE_DIR}/sdk_ctypes.py")
if(REDIRECT_SANITIZER_PRELOAD)
  # python3 is not instrumented; it loads the ASan-built SDK only with ASan's runtime first.
  set_property(TEST tst_sdk_ctypes APPEND PROPERTY ENVIRONMENT "LD_PRELOAD=${REDIRECT_SANITIZER_PRELOAD}")
endif()

# redirect/sio.h compiles as strict C11 and links; without a callout every request is EOPNOTSUPP.
add_executable(tst_sdk_c sdk_c_compile.c)
target_link_libraries(tst_sdk_c PRIVATE Redirect::sio)
set_target_properties(tst_sdk_c PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF AUTOMOC OFF)
redirect_warnings(tst_sdk_c)
target_compile_options(tst_sdk_c PRIVATE -Wpedantic -Werror)
add_test(NAME tst_sdk_c COMMAND tst_sdk_c)
set_tests_properties(tst_sdk_c PROPERTIES TIMEOUT 30)
