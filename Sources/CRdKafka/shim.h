#ifndef XRAY_CRDKAFKA_SHIM_H
#define XRAY_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#endif
