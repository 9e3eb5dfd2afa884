#ifndef YADTQ_CHIREDIS_SHIM_H
#define YADTQ_CHIREDIS_SHIM_H
#include <hiredis.h>
#endif
