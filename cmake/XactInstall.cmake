# Install rules for the package as a whole (each module's library, headers and export set are
# installed by xact_add_library):
#   <libdir>/cmake/xact/xactConfig.cmake, xactConfigVersion.cmake
#       find_package(xact 0.1 CONFIG REQUIRED COMPONENTS coordinator) -> xact::coordinator
#   <libdir>/pkgconfig/xact-<module>.pc, xact.pc (all modules)
#       pkg-config --cflags --libs xact-coordinator
#
# The top-level CMakeLists.txt includes this file last, but the files are written at the end
# of the top-level directory (cmake_language(DEFER)): by then every module has registered
# itself in the global property XACT_MODULES, even one added after this include.
include_guard(GLOBAL)
include(CMakePackageConfigHelpers)

# Must match the DESTINATION of install(EXPORT) in xact_add_library.
set(XACT_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/xact")
set(XACT_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig")

# Sets <out> to the xact modules named in <items> (link items such as xact::coordinator,
# xact_coordinator or $<LINK_ONLY:xact::coordinator>), keeping only modules in <modules>.
function(_xact_modules_in out items modules)
  set(found "")
  foreach(item IN LISTS items)
    string(REGEX MATCHALL "xact(::|_)[A-Za-z0-9_]+" names "${item}")
    foreach(name IN LISTS names)
      string(REGEX REPLACE "^xact(::|_)" "" name "${name}")
      if(name IN_LIST modules)
        list(APPEND found ${name})
      endif()
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES found)
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

# Imported targets of other packages that xact modules may link, recognized without a
# xact_package_dependency() call: "<target> <find_dependency package> <pkg-config module>".
set(XACT_KNOWN_PACKAGES
  "GTest::gtest GTest gtest"
  "GTest::GTest GTest gtest"
  "GTest::gtest_main GTest gtest_main"
  "GTest::Main GTest gtest_main"
  "GTest::gmock GTest gmock"
  "GTest::gmock_main GTest gmock_main"
  "SQLite::SQLite3 SQLite3 sqlite3")

# Reads the link interface of xact_<module>:
#   <prefix>_LOAD     modules whose exported targets must be loaded first (everything in the
#                     exported link interface, including a static library's $<LINK_ONLY:...>)
#   <prefix>_PUBLIC   modules a consumer's code uses through this one (pkg-config Requires)
#   <prefix>_PRIVATE  modules only the library itself links (pkg-config Requires.private)
#   <prefix>_FIND     packages of XACT_KNOWN_PACKAGES to find before loading the targets
#   <prefix>_PC_PUBLIC, <prefix>_PC_PRIVATE  their pkg-config modules
#   <prefix>_THREADS  PUBLIC or PRIVATE when the library links Threads::Threads, else FALSE
#   <prefix>_BOOST    PUBLIC when a consumer compiles against Boost (a PUBLIC Boost:: target),
#                     LINK_ONLY when only the exported link interface names one (a static
#                     library's private Boost), else FALSE
function(_xact_read_link_interface prefix module modules)
  get_target_property(iface xact_${module} INTERFACE_LINK_LIBRARIES)
  get_target_property(link xact_${module} LINK_LIBRARIES)
  if(NOT iface)
    set(iface "")
  endif()
  if(NOT link)
    set(link "")
  endif()
  set(public_items "")
  set(exported_items "")
  foreach(item IN LISTS iface)
    if(item MATCHES "^\\$<LINK_ONLY:(.*)>$")
      list(APPEND exported_items "${CMAKE_MATCH_1}")
    else()
      list(APPEND public_items "${item}")
      list(APPEND exported_items "${item}")
    endif()
  endforeach()
  _xact_modules_in(load "${iface}" "${modules}")
  _xact_modules_in(public "${public_items}" "${modules}")
  _xact_modules_in(all "${iface};${link}" "${modules}")
  set(private ${all})
  if(public)
    list(REMOVE_ITEM private ${public})
  endif()
  list(REMOVE_ITEM load ${module})

  set(find "")
  set(pc_public "")
  set(pc_private "")
  foreach(item IN LISTS exported_items link)
    foreach(known IN LISTS XACT_KNOWN_PACKAGES)
      string(REPLACE " " ";" known "${known}")
      list(GET known 0 target)
      list(GET known 1 package)
      list(GET known 2 pc)
      if(item STREQUAL target)
        if(item IN_LIST exported_items)
          list(APPEND find ${package})
        endif()
        if(item IN_LIST public_items)
          list(APPEND pc_public ${pc})
        else()
          list(APPEND pc_private ${pc})
        endif()
      endif()
    endforeach()
  endforeach()
  foreach(var find pc_public pc_private)
    list(REMOVE_DUPLICATES ${var})
  endforeach()
  if(pc_public)
    list(REMOVE_ITEM pc_private ${pc_public})
  endif()

  set(threads FALSE)
  set(boost FALSE)
  if("${public_items}" MATCHES "Threads::Threads")
    set(threads PUBLIC)
  elseif("${iface};${link}" MATCHES "Threads::Threads")
    set(threads PRIVATE)
  endif()
  if("${public_items}" MATCHES "Boost::")
    set(boost PUBLIC)
  elseif("${exported_items}" MATCHES "Boost::")
    set(boost LINK_ONLY)
  endif()
  foreach(var LOAD PUBLIC PRIVATE FIND PC_PUBLIC PC_PRIVATE THREADS BOOST)
    string(TOLOWER "${var}" lower)
    set(${prefix}_${var} "${${lower}}" PARENT_SCOPE)
  endforeach()
endfunction()

# Prefixes each item of <items> with "xact-" (pkg-config module names).
function(_xact_pc_requires out items)
  set(result "")
  foreach(item IN LISTS items)
    list(APPEND result "xact-${item}")
  endforeach()
  set(${out} "${result}" PARENT_SCOPE)
endfunction()

function(_xact_generate_package_files)
  get_property(modules GLOBAL PROPERTY XACT_MODULES)
  list(REMOVE_DUPLICATES modules)
  if(NOT modules)
    message(WARNING "xact: no module was defined with xact_add_library: nothing to package")
    return()
  endif()

  foreach(module IN LISTS modules)
    _xact_read_link_interface(dep_${module} ${module} "${modules}")
  endforeach()

  # Order the modules so that each comes after the modules its targets reference: a module's
  # export file fails to load when a target it references is not defined yet.
  set(sorted "")
  set(remaining ${modules})
  while(remaining)
    set(progress FALSE)
    foreach(module IN LISTS remaining)
      set(ready TRUE)
      foreach(dep IN LISTS dep_${module}_LOAD)
        if(NOT dep IN_LIST sorted)
          set(ready FALSE)
        endif()
      endforeach()
      if(ready)
        list(APPEND sorted ${module})
        list(REMOVE_ITEM remaining ${module})
        set(progress TRUE)
      endif()
    endforeach()
    if(NOT progress)
      message(FATAL_ERROR "xact: the link dependencies of modules ${remaining} form a cycle")
    endif()
  endwhile()

  # --- xactConfig.cmake and xactConfigVersion.cmake ----------------------------------------
  set(XACT_CONFIG_MODULES "${sorted}")
  set(XACT_CONFIG_DEPENDENCIES "")
  set(XACT_CONFIG_MODULE_SECTIONS "")
  foreach(module IN LISTS sorted)
    string(APPEND XACT_CONFIG_DEPENDENCIES
      "set(_xact_deps_${module} \"${dep_${module}_LOAD}\")\n")
    set(code "")
    # Only where the installed targets name Boost: a shared library with Boost in its sources
    # only must not make its consumers install Boost. 1.74: the top-level find_package(Boost).
    if(dep_${module}_BOOST)
      string(APPEND code "find_dependency(Boost 1.74)\n")
    endif()
    foreach(package IN LISTS dep_${module}_FIND)
      string(APPEND code "find_dependency(${package})\n")
    endforeach()
    get_property(extra_code GLOBAL PROPERTY XACT_${module}_CONFIG_CODE)
    string(APPEND code "${extra_code}")
    # Indent the module's code inside its if() block.
    string(REGEX REPLACE "([^\n]+)" "  \\1" code "${code}")
    string(APPEND XACT_CONFIG_MODULE_SECTIONS
      "if(\"${module}\" IN_LIST _xact_load)\n"
      "${code}"
      "  if(NOT EXISTS \"\${CMAKE_CURRENT_LIST_DIR}/xact-${module}-targets.cmake\")\n"
      "    set(xact_NOT_FOUND_MESSAGE \"xact: module '${module}' is not installed completely: \${CMAKE_CURRENT_LIST_DIR}/xact-${module}-targets.cmake is missing\")\n"
      "    set(xact_FOUND FALSE)\n"
      "    return()\n"
      "  endif()\n"
      "  if(NOT TARGET xact::${module})\n"
      "    include(\"\${CMAKE_CURRENT_LIST_DIR}/xact-${module}-targets.cmake\")\n"
      "  endif()\n"
      "  set(xact_${module}_FOUND TRUE)\n"
      "endif()\n")
  endforeach()

  set(config_dir "${PROJECT_BINARY_DIR}/package")
  configure_package_config_file(
    "${PROJECT_SOURCE_DIR}/cmake/xactConfig.cmake.in"
    "${config_dir}/xactConfig.cmake"
    INSTALL_DESTINATION "${XACT_INSTALL_CMAKEDIR}")
  # 0.x: a minor release may break the API, so 0.1 only accepts 0.1.*; from 1.0 on, SemVer.
  if(PROJECT_VERSION_MAJOR EQUAL 0)
    set(compatibility SameMinorVersion)
  else()
    set(compatibility SameMajorVersion)
  endif()
  write_basic_package_version_file(
    "${config_dir}/xactConfigVersion.cmake"
    VERSION ${PROJECT_VERSION}
    COMPATIBILITY ${compatibility})
  install(FILES "${config_dir}/xactConfig.cmake" "${config_dir}/xactConfigVersion.cmake"
    DESTINATION "${XACT_INSTALL_CMAKEDIR}")

  # --- pkg-config files --------------------------------------------------------------------
  # Written at install time so that `prefix` is the prefix actually installed to (cmake
  # --install --prefix overrides the configured one); DESTDIR staging is respected.
  set(pc_dir "${PROJECT_BINARY_DIR}/pkgconfig")
  file(REMOVE_RECURSE "${pc_dir}")
  foreach(var libdir includedir)
    string(TOUPPER "${var}" upper)
    if(IS_ABSOLUTE "${CMAKE_INSTALL_${upper}}")
      set(pc_${var} "${CMAKE_INSTALL_${upper}}")
    else()
      set(pc_${var} "\${prefix}/${CMAKE_INSTALL_${upper}}")
    endif()
  endforeach()

  set(boost_cflags "")
  if(TARGET Boost::headers)
    get_target_property(boost_includes Boost::headers INTERFACE_INCLUDE_DIRECTORIES)
    foreach(dir IN LISTS boost_includes)
      if(dir AND NOT dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
        string(APPEND boost_cflags " -I${dir}")
      endif()
    endforeach()
  endif()

  set(pc_files "")
  foreach(module IN LISTS sorted)
    get_target_property(type xact_${module} TYPE)
    get_target_property(output_name xact_${module} OUTPUT_NAME)
    if(NOT output_name)
      set(output_name xact_${module})
    endif()
    get_property(extra_requires GLOBAL PROPERTY XACT_${module}_PC_REQUIRES)
    get_property(extra_libs GLOBAL PROPERTY XACT_${module}_PC_LIBS)

    _xact_pc_requires(requires "${dep_${module}_PUBLIC}")
    _xact_pc_requires(requires_private "${dep_${module}_PRIVATE}")
    list(APPEND requires ${dep_${module}_PC_PUBLIC})
    list(APPEND requires_private ${dep_${module}_PC_PRIVATE} ${extra_requires})
    list(JOIN requires ", " requires)
    list(JOIN requires_private ", " requires_private)
    set(libs_private ${extra_libs})
    set(libs "-L\${libdir} -l${output_name}")
    if(dep_${module}_THREADS STREQUAL "PUBLIC")
      string(APPEND libs " -pthread")
    elseif(dep_${module}_THREADS)
      list(APPEND libs_private -pthread)
    endif()
    list(JOIN libs_private " " libs_private)
    set(cflags "-I\${includedir}")
    if(dep_${module}_BOOST STREQUAL "PUBLIC")
      string(APPEND cflags "${boost_cflags}")
    endif()

    # A static library carries none of its own dependencies, and plain `pkg-config --libs`
    # ignores the .private fields: list them as ordinary requirements.
    if(type STREQUAL "STATIC_LIBRARY")
      if(requires_private)
        if(requires)
          string(APPEND requires ", ")
        endif()
        string(APPEND requires "${requires_private}")
        set(requires_private "")
      endif()
      if(libs_private)
        string(APPEND libs " ${libs_private}")
        set(libs_private "")
      endif()
    endif()

    file(WRITE "${pc_dir}/xact-${module}.pc.in"
      "prefix=@XACT_PC_PREFIX@\n"
      "libdir=${pc_libdir}\n"
      "includedir=${pc_includedir}\n"
      "\n"
      "Name: xact-${module}\n"
      "Description: xact ${module} module (${PROJECT_DESCRIPTION}). Needs C++20.\n"
      "Version: ${PROJECT_VERSION}\n"
      "Requires: ${requires}\n"
      "Requires.private: ${requires_private}\n"
      "Libs: ${libs}\n"
      "Libs.private: ${libs_private}\n"
      "Cflags: ${cflags}\n")
    list(APPEND pc_files xact-${module}.pc)
  endforeach()

  _xact_pc_requires(all_requires "${sorted}")
  list(JOIN all_requires ", " all_requires)
  file(WRITE "${pc_dir}/xact.pc.in"
    "prefix=@XACT_PC_PREFIX@\n"
    "\n"
    "Name: xact\n"
    "Description: ${PROJECT_DESCRIPTION}: every module. Needs C++20.\n"
    "Version: ${PROJECT_VERSION}\n"
    "Requires: ${all_requires}\n")
  list(APPEND pc_files xact.pc)

  if(IS_ABSOLUTE "${XACT_INSTALL_PKGCONFIGDIR}")
    set(pc_destination "${XACT_INSTALL_PKGCONFIGDIR}")
  else()
    set(pc_destination "\${CMAKE_INSTALL_PREFIX}/${XACT_INSTALL_PKGCONFIGDIR}")
  endif()
  set(script "${pc_dir}/install-pkgconfig.cmake")
  file(WRITE "${script}"
    "# Generated by cmake/XactInstall.cmake: writes the pkg-config files for the install prefix.\n"
    "set(XACT_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")\n"
    "set(_xact_pc_files \"\")\n"
    "foreach(_xact_pc IN ITEMS ${pc_files})\n"
    "  configure_file(\"${pc_dir}/\${_xact_pc}.in\" \"${pc_dir}/out/\${_xact_pc}\" @ONLY)\n"
    "  list(APPEND _xact_pc_files \"${pc_dir}/out/\${_xact_pc}\")\n"
    "endforeach()\n"
    "file(INSTALL DESTINATION \"${pc_destination}\" TYPE FILE FILES \${_xact_pc_files})\n")
  install(SCRIPT "${script}")

  list(JOIN sorted ", " listed)
  message(STATUS "xact: packaging modules ${listed} (find_package(xact COMPONENTS ...), xact-<module>.pc)")
endfunction()

cmake_language(DEFER CALL _xact_generate_package_files)
