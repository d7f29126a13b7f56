# include_paths.cmake - run by the ctest `layering_paths` (cmake -P):
# engine/ files include other engine headers by bare name only. A path in
# a quoted include ("../plan/plan.h", "plan/plan.h") would reach around the
# include path that cmake/trestle_layers.cmake gives each layer, so it is
# refused here, file and line named.
file(GLOB_RECURSE files ${SOURCE_DIR}/engine/*.c ${SOURCE_DIR}/engine/*.h)
set(bad "")
foreach(f IN LISTS files)
  file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"[^\"]*/")
  foreach(l IN LISTS lines)
    file(RELATIVE_PATH rel ${SOURCE_DIR} ${f})
    string(APPEND bad "  ${rel}: ${l}\n")
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "engine/ includes by path, around the layering:\n${bad}")
endif()
message(STATUS "engine/: every quoted include is a bare name")
