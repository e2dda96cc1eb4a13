/* _omp.h - the OpenMP calls _kernels.pyx needs, with serial stand-ins when
 * the extension is built without OpenMP (setup.py's probe failed or was
 * switched off). */
#ifndef SOFTMAX_C_OMP_H
#define SOFTMAX_C_OMP_H
#ifdef _OPENMP
#include <omp.h>
#define SC_HAVE_OPENMP 1
#else
#define SC_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_procs(void) { return 1; }
#endif
#ifndef SC_CFLAGS
#define SC_CFLAGS ""
#endif
#endif
