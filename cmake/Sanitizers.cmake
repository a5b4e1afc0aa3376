# Sanitizer and fuzzing builds (options REDIRECT_SANITIZE and REDIRECT_FUZZ in the top-level
# CMakeLists.txt). The flags go to every C and C++ target through add_compile_options, so the
# engine, the SDK's shared library, the app and the tests are all instrumented. The BPF object is
# not: bpf_skeleton() compiles it with its own command line (clang -target bpf), which these
# directory options never reach. Qt, spdlog and libbpf come uninstrumented from Debian; ASan still
# sees their heap through its malloc interposition.
if(REDIRECT_FUZZ)
  # libFuzzer ships with clang only; g++ stays the default compiler of the other builds.
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang" OR NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "REDIRECT_FUZZ=ON needs clang: configure with CC=clang CXX=clang++ "
                        "(found ${CMAKE_C_COMPILER_ID} / ${CMAKE_CXX_COMPILER_ID})")
  endif()
  if(NOT REDIRECT_SANITIZE)
    set(REDIRECT_SANITIZE "address,undefined")
  endif()
endif()

if(REDIRECT_SANITIZE)
  string(REPLACE "," ";" sanitizers "${REDIRECT_SANITIZE}")
  foreach(s IN LISTS sanitizers)
    if(NOT s MATCHES "^(address|undefined|leak)$")
      message(FATAL_ERROR "REDIRECT_SANITIZE: '${s}' is not one of address, undefined, leak")
    endif()
  endforeach()
  set(sanitize_flags -fsanitize=${REDIRECT_SANITIZE} -fno-omit-frame-pointer)
  if("undefined" IN_LIST sanitizers)
    # A UBSan report aborts the test instead of scrolling past in a passing run.
    list(APPEND sanitize_flags -fno-sanitize-recover=undefined)
  endif()
  add_compile_options(${sanitize_flags})
  add_link_options(-fsanitize=${REDIRECT_SANITIZE})
  # An uninstrumented interpreter (python3 ctypes) can load our instrumented shared SDK only with
  # ASan's runtime preloaded; tests that do that add LD_PRELOAD=${REDIRECT_SANITIZER_PRELOAD}.
  if("address" IN_LIST sanitizers AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                    OUTPUT_VARIABLE REDIRECT_SANITIZER_PRELOAD OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
  message(STATUS "Sanitizers: ${REDIRECT_SANITIZE}")
endif()

if(REDIRECT_FUZZ)
  # Coverage feedback for libFuzzer in every library the harnesses reach; the harnesses themselves
  # link -fsanitize=fuzzer (libFuzzer's main) in tests/fuzz.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
