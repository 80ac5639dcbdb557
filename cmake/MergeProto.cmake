# Merge DCD-Caffe's proto additions into Caffe's caffe.proto.
#
# Usable two ways:
#   include(cmake/MergeProto.cmake) then dcd_merge_proto(<upstream> <additions> <out>)
#   cmake -DUPSTREAM=... -DADDITIONS=... -DOUTPUT=... -P cmake/MergeProto.cmake
# The output is rewritten only when its content changes, so an unchanged
# proto does not force Caffe to recompile.

function(dcd_merge_proto upstream additions output)
  file(READ "${upstream}" base)
  file(READ "${additions}" extra)

  set(begin_marker "// BEGIN LayerParameter fields")
  set(end_marker "// END LayerParameter fields")
  string(FIND "${extra}" "${begin_marker}" begin_pos)
  string(FIND "${extra}" "${end_marker}" end_pos)
  if(begin_pos LESS 0 OR end_pos LESS begin_pos)
    message(FATAL_ERROR "${additions}: expected the markers '${begin_marker}' "
                        "and '${end_marker}', in that order.")
  endif()
  string(LENGTH "${begin_marker}" begin_len)
  string(LENGTH "${end_marker}" end_len)
  math(EXPR fields_start "${begin_pos} + ${begin_len}")
  math(EXPR fields_len "${end_pos} - ${fields_start}")
  string(SUBSTRING "${extra}" ${fields_start} ${fields_len} fields)
  math(EXPR rest_start "${end_pos} + ${end_len}")
  string(SUBSTRING "${extra}" ${rest_start} -1 messages)

  # The closing brace of `message LayerParameter {` is the first line that
  # is a lone "}" after the message header.
  string(FIND "${base}" "message LayerParameter {" lp_pos)
  if(lp_pos LESS 0)
    message(FATAL_ERROR "${upstream}: no 'message LayerParameter {' found; "
                        "is this Caffe's caffe.proto?")
  endif()
  string(SUBSTRING "${base}" ${lp_pos} -1 lp_tail)
  string(FIND "${lp_tail}" "\n}\n" close_rel)
  if(close_rel LESS 0)
    message(FATAL_ERROR "${upstream}: cannot find the end of message LayerParameter.")
  endif()
  if(base MATCHES "= 18[0-9][0-9];")
    message(FATAL_ERROR "${upstream} already uses field numbers 1800-1899, "
                        "the block DCD-Caffe reserves for its own layers.")
  endif()
  math(EXPR close_pos "${lp_pos} + ${close_rel} + 1")
  string(SUBSTRING "${base}" 0 ${close_pos} head)
  string(SUBSTRING "${base}" ${close_pos} -1 tail)

  set(merged "${head}${fields}${tail}\n// ---- DCD-Caffe additions (caffe_layers/proto/dcd.proto) ----${messages}")
  set(tmp "${output}.dcd-tmp")
  file(WRITE "${tmp}" "${merged}")
  configure_file("${tmp}" "${output}" COPYONLY)
  file(REMOVE "${tmp}")
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND DEFINED UPSTREAM)
  dcd_merge_proto("${UPSTREAM}" "${ADDITIONS}" "${OUTPUT}")
endif()
