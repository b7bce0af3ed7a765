#ifndef SPENDWALL_CSYSTEMD_SHIM_H
#define SPENDWALL_CSYSTEMD_SHIM_H
#include <systemd/sd-daemon.h>
#endif
