// librdkafka's C API, from Debian's librdkafka-dev (the KafkaWorkQueue's only Kafka client; nothing vendored).
#ifndef PHOTO_SORTER_CRDKAFKA_SHIM_H
#define PHOTO_SORTER_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#endif
