/*
 * upward_include.c - an upward #include that must not compile.
 *
 * The ctest `layering` compiles this file with engine/format/'s include
 * path (cmake/trestle_layers.cmake) and passes only when the compiler says
 * plan.h cannot be found: the checkpoint format sits below the planner, so
 * no format file may see the planner's header. If this ever compiles, a
 * layer's include path has grown a folder it must not use.
 */
#include "plan.h"

typedef int trestle_layering_probe; /* ISO C wants one declaration */
