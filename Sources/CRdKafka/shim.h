#ifndef YADTQ_CRDKAFKA_SHIM_H
#define YADTQ_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#endif
