# mpi_symbols.cmake - run by the ctest `layering_mpi_symbols` (cmake -P,
# LIB = libtrestle_mpi.so): the library must leave no trestle__ symbol
# undefined. libtrestle.so exports only the public trestle_* calls, so an
# internal one libtrestle_mpi calls would fail to resolve when a program
# loads it (the link of a shared library does not notice).
find_program(NM NAMES nm REQUIRED)
execute_process(COMMAND ${NM} -D --undefined-only ${LIB} OUTPUT_VARIABLE undefined
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm -D ${LIB} failed (${rc})")
endif()
string(REGEX MATCHALL "[^\n]* trestle__[A-Za-z0-9_]*" bad "${undefined}")
if(bad)
  string(REPLACE ";" "\n" bad "${bad}")
  message(FATAL_ERROR "${LIB} calls internals of libtrestle it cannot reach:\n${bad}")
endif()
message(STATUS "${LIB}: no trestle__ symbol left undefined")
