# Helpers shared by every module's CMakeLists.txt.

# GCC 12's -Wmissing-field-initializers (in -Wextra) also fires on designated initializers that
# leave members to their defaults (`ManagerOptions{.allow_unlogged_decisions = true}`), the way
# xact's option structs are meant to be filled: about 300 such warnings per build hid the others.
set(XACT_WARNINGS -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)

function(xact_configure_sanitizers)
  if(XACT_SANITIZE_ADDRESS AND XACT_SANITIZE_THREAD)
    message(FATAL_ERROR "XACT_SANITIZE_ADDRESS and XACT_SANITIZE_THREAD cannot be combined: build twice")
  endif()
  if(XACT_SANITIZE_ADDRESS)
    add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    add_link_options(-fsanitize=address,undefined)
  endif()
  if(XACT_SANITIZE_THREAD)
    add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
    add_link_options(-fsanitize=thread)
  endif()
  # libFuzzer steers by the coverage of the code it reaches: every library a fuzz target links
  # gets the coverage and comparison hooks (fuzzer-no-link); only the targets link libFuzzer's
  # main (-fsanitize=fuzzer, tests/fuzz/CMakeLists.txt). The other executables of such a build
  # (tests, tools) link the hooks' default definitions from ASan's runtime, and a fuzzer without
  # ASan misses the out-of-bounds reads it is there to find: XACT_SANITIZE_ADDRESS is required.
  if(XACT_FUZZ)
    if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
      message(FATAL_ERROR "XACT_FUZZ needs clang (libFuzzer): configure with CXX=clang++")
    endif()
    if(NOT XACT_SANITIZE_ADDRESS)
      message(FATAL_ERROR "XACT_FUZZ needs XACT_SANITIZE_ADDRESS=ON")
    endif()
    add_compile_options(-fsanitize=fuzzer-no-link)
  endif()
endfunction()

# xact_add_library(NAME <module> [STATIC] SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# Defines target xact_<module>, alias xact::<module>, export name <module>, public headers in
# <module dir>/include, a versioned shared library (SONAME) or a static one.
function(xact_add_library)
  cmake_parse_arguments(A "STATIC" "NAME" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  set(tgt xact_${A_NAME})
  if(A_STATIC)
    add_library(${tgt} STATIC ${A_SOURCES})
  else()
    add_library(${tgt} ${A_SOURCES})
  endif()
  add_library(xact::${A_NAME} ALIAS ${tgt})
  target_include_directories(${tgt} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_include_directories(${tgt} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_compile_features(${tgt} PUBLIC cxx_std_20)
  target_compile_options(${tgt} PRIVATE ${XACT_WARNINGS})
  target_link_libraries(${tgt} PUBLIC ${A_PUBLIC_DEPS} PRIVATE ${A_PRIVATE_DEPS})
  set_target_properties(${tgt} PROPERTIES
    EXPORT_NAME ${A_NAME}
    OUTPUT_NAME xact_${A_NAME}
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
  set_property(GLOBAL APPEND PROPERTY XACT_MODULES ${A_NAME})
  if(XACT_INSTALL)
    install(TARGETS ${tgt} EXPORT xact-${A_NAME}-targets
      ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
      LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
      RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
    install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
    install(EXPORT xact-${A_NAME}-targets NAMESPACE xact::
      DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/xact)
  endif()
endfunction()

# xact_add_test(NAME <name> SOURCES ... [DEPS ...] [LABELS ...])
# A GoogleTest binary whose tests are registered one by one with ctest, with labels.
function(xact_add_test)
  cmake_parse_arguments(A "" "NAME" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${A_NAME} ${A_SOURCES})
  target_compile_options(${A_NAME} PRIVATE ${XACT_WARNINGS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gtest GTest::gtest_main Threads::Threads)
  gtest_discover_tests(${A_NAME} PROPERTIES LABELS "${A_LABELS}" DISCOVERY_TIMEOUT 60)
endfunction()

# xact_package_dependency(MODULE <module> [FIND_DEPENDENCY <args>...] [CODE <cmake code>]
#                         [PKG_CONFIG_REQUIRES <module>...] [PKG_CONFIG_LIBS <flags>...])
# Declares what a consumer of the installed <module> needs besides xact's own modules (those
# are found from the targets' link interfaces), Threads (always looked for) and Boost (looked for
# where the exported link interface names a Boost:: target):
#   FIND_DEPENDENCY  arguments of one find_dependency() call in xactConfig.cmake, made when
#                    <module> is requested, before its targets are loaded
#   CODE             CMake code run at the same point, for what find_dependency cannot do,
#                    e.g. "find_dependency(PkgConfig)\npkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)"
#   PKG_CONFIG_REQUIRES / PKG_CONFIG_LIBS  pkg-config modules / linker flags of the library's
#                    private dependencies (Requires.private / Libs.private of xact-<module>.pc,
#                    promoted to Requires / Libs when the library is static). pkgconf resolves
#                    Requires.private even for a plain --cflags --libs: declare a module that
#                    only a static build needs only when the library is static
# Declare what appears in the module's exported link interface: its PUBLIC dependencies, and
# in a static build its PRIVATE ones too. Call it any time before the end of configuration.
function(xact_package_dependency)
  cmake_parse_arguments(A "" "MODULE;CODE" "FIND_DEPENDENCY;PKG_CONFIG_REQUIRES;PKG_CONFIG_LIBS" ${ARGN})
  if(NOT A_MODULE)
    message(FATAL_ERROR "xact_package_dependency: MODULE is required")
  endif()
  if(A_FIND_DEPENDENCY)
    list(JOIN A_FIND_DEPENDENCY " " args)
    set_property(GLOBAL APPEND_STRING PROPERTY XACT_${A_MODULE}_CONFIG_CODE "find_dependency(${args})\n")
  endif()
  if(A_CODE)
    set_property(GLOBAL APPEND_STRING PROPERTY XACT_${A_MODULE}_CONFIG_CODE "${A_CODE}\n")
  endif()
  set_property(GLOBAL APPEND PROPERTY XACT_${A_MODULE}_PC_REQUIRES ${A_PKG_CONFIG_REQUIRES})
  set_property(GLOBAL APPEND PROPERTY XACT_${A_MODULE}_PC_LIBS ${A_PKG_CONFIG_LIBS})
endfunction()
