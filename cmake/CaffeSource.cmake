# Obtain the pinned Caffe source, patch it, and splice DCD-Caffe's layers in.
#
# Result: CAFFE_TREE, a Caffe source tree under the build folder that
# add_subdirectory() can build. It is never reused half-made: a tree is
# assembled in "<tree>.partial" and renamed only after every step worked,
# and its stamp records what it was made from (source and patches), so a
# change of either rebuilds it from scratch.

set(DCD_CAFFE_DEB_VERSION "1.0.0+git20180821.99bd997-8")
set(DCD_CAFFE_UPSTREAM_VERSION "1.0.0+git20180821.99bd997")
# sha256 of the three files of Debian's source package.
set(DCD_CAFFE_SHA256_orig "e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c")
set(DCD_CAFFE_SHA256_debian "07cf073227494a6b07234e40cb5df91db566616593eef9baafdc4d06ad159f21")
set(DCD_CAFFE_SHA256_dsc "c492f4893fc1ba1fb514b2d9b4763bc78dc93571ea24adc6e604eccbb93cdd64")

set(CAFFE_SOURCE_DIR "" CACHE PATH
    "Use this Caffe checkout instead of downloading the pinned Debian source package")
set(DCD_DOWNLOAD_DIR "${PROJECT_SOURCE_DIR}/build/downloads" CACHE PATH
    "Where the Caffe source package is downloaded and cached")

set(CAFFE_TREE "${CMAKE_BINARY_DIR}/caffe-src")
set(_dcd_patch_dir "${PROJECT_SOURCE_DIR}/caffe_layers/patches")

function(_dcd_run)
  # Run a command; on failure stop with the given message and its output.
  cmake_parse_arguments(R "" "WHAT;WORKING_DIRECTORY" "COMMAND" ${ARGN})
  execute_process(COMMAND ${R_COMMAND}
                  WORKING_DIRECTORY "${R_WORKING_DIRECTORY}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${R_WHAT} failed (exit ${rc}):\n${out}\n${err}")
  endif()
endfunction()

function(_dcd_check_sha256 file expected result_var)
  file(SHA256 "${file}" actual)
  if(actual STREQUAL expected)
    set(${result_var} TRUE PARENT_SCOPE)
  else()
    set(${result_var} FALSE PARENT_SCOPE)
    set(_dcd_last_sha "${actual}" PARENT_SCOPE)
  endif()
endfunction()

# --- 1. The source: a user's checkout, or Debian's pinned source package ----
set(_pkg "caffe_${DCD_CAFFE_DEB_VERSION}")
set(_files_orig "caffe_${DCD_CAFFE_UPSTREAM_VERSION}.orig.tar.gz")
set(_files_debian "${_pkg}.debian.tar.xz")
set(_files_dsc "${_pkg}.dsc")

if(CAFFE_SOURCE_DIR)
  get_filename_component(_user_src "${CAFFE_SOURCE_DIR}" ABSOLUTE)
  if(NOT EXISTS "${_user_src}/src/caffe/proto/caffe.proto" OR NOT EXISTS "${_user_src}/CMakeLists.txt")
    message(FATAL_ERROR "CAFFE_SOURCE_DIR=${_user_src} does not look like a Caffe checkout "
                        "(no src/caffe/proto/caffe.proto or CMakeLists.txt).")
  endif()
  set(_source_id "user:${_user_src}")
else()
  set(_source_id "debian:${DCD_CAFFE_DEB_VERSION}:${DCD_CAFFE_SHA256_orig}")
  set(_need_download FALSE)
  foreach(kind orig debian dsc)
    if(NOT EXISTS "${DCD_DOWNLOAD_DIR}/${_files_${kind}}")
      set(_need_download TRUE)
    endif()
  endforeach()
  if(_need_download)
    message(STATUS "DCD-Caffe: downloading Debian's caffe ${DCD_CAFFE_DEB_VERSION} source package")
    _dcd_run(WHAT "Downloading the Caffe source package (cmake/fetch_caffe_source.sh)"
             COMMAND bash "${PROJECT_SOURCE_DIR}/cmake/fetch_caffe_source.sh"
                     "${DCD_DOWNLOAD_DIR}" "${DCD_CAFFE_DEB_VERSION}")
  endif()
  foreach(kind orig debian dsc)
    set(_f "${DCD_DOWNLOAD_DIR}/${_files_${kind}}")
    if(NOT EXISTS "${_f}")
      message(FATAL_ERROR "The Caffe source package download did not produce ${_f}. "
                          "Check the network and apt configuration, then run the build again.")
    endif()
    _dcd_check_sha256("${_f}" "${DCD_CAFFE_SHA256_${kind}}" _ok)
    if(NOT _ok)
      # A bad file is moved aside so that the next run downloads it afresh.
      file(RENAME "${_f}" "${_f}.bad-checksum")
      message(FATAL_ERROR "Checksum mismatch for ${_f}:\n"
                          "  expected sha256 ${DCD_CAFFE_SHA256_${kind}}\n"
                          "  got      sha256 ${_dcd_last_sha}\n"
                          "The file was moved to ${_f}.bad-checksum. Run the build again to "
                          "download it afresh; if the mismatch persists, the mirror serves a "
                          "different package: bring a Caffe checkout with -DCAFFE_SOURCE_DIR=<path>.")
    endif()
  endforeach()
endif()

# --- 2. Assemble the tree if it is missing or was made from something else --
# CONFIGURE_DEPENDS: a patch added later re-runs the configure step too.
file(GLOB _dcd_patches CONFIGURE_DEPENDS "${_dcd_patch_dir}/*.patch")
list(SORT _dcd_patches)
set(_stamp_text "source=${_source_id}\n")
foreach(p ${_dcd_patches})
  file(SHA256 "${p}" h)
  get_filename_component(n "${p}" NAME)
  string(APPEND _stamp_text "patch=${n}:${h}\n")
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_dcd_patches})

set(_stamp_file "${CAFFE_TREE}/.dcd-tree-stamp")
set(_tree_ok FALSE)
if(EXISTS "${_stamp_file}")
  file(READ "${_stamp_file}" _old_stamp)
  if(_old_stamp STREQUAL _stamp_text)
    set(_tree_ok TRUE)
  endif()
endif()

if(NOT _tree_ok)
  set(_partial "${CAFFE_TREE}.partial")
  file(REMOVE_RECURSE "${_partial}")
  if(CAFFE_SOURCE_DIR)
    message(STATUS "DCD-Caffe: copying ${_user_src} into the build tree")
    file(MAKE_DIRECTORY "${_partial}")
    _dcd_run(WHAT "Copying ${_user_src}"
             COMMAND cp -a "${_user_src}/." "${_partial}/")
    file(REMOVE_RECURSE "${_partial}/.git" "${_partial}/build")
  else()
    find_program(DPKG_SOURCE dpkg-source)
    if(NOT DPKG_SOURCE)
      message(FATAL_ERROR "dpkg-source (package dpkg-dev) is needed to unpack the Caffe "
                          "source package; run 'make setup' or install dpkg-dev.")
    endif()
    message(STATUS "DCD-Caffe: unpacking ${_files_dsc}")
    _dcd_run(WHAT "Unpacking ${_files_dsc} with dpkg-source"
             COMMAND "${DPKG_SOURCE}" --no-check -x "${DCD_DOWNLOAD_DIR}/${_files_dsc}" "${_partial}"
             WORKING_DIRECTORY "${CMAKE_BINARY_DIR}")
  endif()
  foreach(p ${_dcd_patches})
    get_filename_component(n "${p}" NAME)
    # A patch already present in a user's checkout is skipped, not reapplied.
    execute_process(COMMAND patch -p1 --dry-run --reverse --force --silent -i "${p}"
                    WORKING_DIRECTORY "${_partial}" RESULT_VARIABLE already
                    OUTPUT_QUIET ERROR_QUIET)
    if(already EQUAL 0)
      message(STATUS "DCD-Caffe: patch ${n} is already applied")
    else()
      message(STATUS "DCD-Caffe: applying ${n}")
      _dcd_run(WHAT "Applying caffe_layers/patches/${n} (does it match this Caffe source?)"
               COMMAND patch -p1 --forward --no-backup-if-mismatch -i "${p}"
               WORKING_DIRECTORY "${_partial}")
    endif()
  endforeach()
  # Keep upstream's proto: the merged caffe.proto is regenerated from it.
  file(COPY_FILE "${_partial}/src/caffe/proto/caffe.proto"
                 "${_partial}/src/caffe/proto/caffe.proto.upstream")
  file(WRITE "${_partial}/.dcd-tree-stamp" "${_stamp_text}")
  file(REMOVE_RECURSE "${CAFFE_TREE}")
  file(RENAME "${_partial}" "${CAFFE_TREE}")
endif()

# --- 3. Splice caffe_layers/ into the tree --------------------------------
# Files are linked, not copied: editing a layer in caffe_layers/ rebuilds it.
# The glob is re-evaluated at build time, so a new layer file re-runs the
# configure step, which Caffe needs because it globs its own sources.
set(_layers_root "${PROJECT_SOURCE_DIR}/caffe_layers")
file(GLOB_RECURSE _dcd_layer_files CONFIGURE_DEPENDS
     RELATIVE "${_layers_root}"
     "${_layers_root}/include/*" "${_layers_root}/src/*")
set(_manifest "${CAFFE_TREE}/.dcd-spliced-files")
if(EXISTS "${_manifest}")
  file(STRINGS "${_manifest}" _old_spliced)
  foreach(rel ${_old_spliced})
    if(NOT rel IN_LIST _dcd_layer_files)
      file(REMOVE "${CAFFE_TREE}/${rel}")
    endif()
  endforeach()
endif()
set(DCD_LAYER_TESTS "")
foreach(rel ${_dcd_layer_files})
  set(dst "${CAFFE_TREE}/${rel}")
  if(EXISTS "${dst}" AND NOT IS_SYMLINK "${dst}")
    message(FATAL_ERROR "caffe_layers/${rel} would replace Caffe's own ${rel}; "
                        "rename the project's file.")
  endif()
  get_filename_component(dst_dir "${dst}" DIRECTORY)
  file(MAKE_DIRECTORY "${dst_dir}")
  file(CREATE_LINK "${_layers_root}/${rel}" "${dst}" SYMBOLIC)
  if(rel MATCHES "^src/caffe/test/test_(.*)\\.(cpp|cu)$")
    list(APPEND DCD_LAYER_TESTS "${CMAKE_MATCH_1}")
  endif()
endforeach()
string(REPLACE ";" "\n" _manifest_text "${_dcd_layer_files}")
file(WRITE "${_manifest}" "${_manifest_text}\n")
list(REMOVE_DUPLICATES DCD_LAYER_TESTS)

include("${CMAKE_CURRENT_LIST_DIR}/MergeProto.cmake")
set(_dcd_proto "${_layers_root}/proto/dcd.proto")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_dcd_proto}")
dcd_merge_proto("${CAFFE_TREE}/src/caffe/proto/caffe.proto.upstream" "${_dcd_proto}"
                "${CAFFE_TREE}/src/caffe/proto/caffe.proto")
