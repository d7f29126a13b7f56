/* trestle CLI - placeholder until the subcommands land. */
#include <stdio.h>
#include "trestle.h"
int main(void)
{
    printf("trestle %s\n", trestle_version_string());
    return 0;
}
