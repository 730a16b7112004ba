#include "backend/cpu/quants_impl.h"

namespace tessera::cpu {
void fill_avx512_kernels(KernelTable& t) {}
}  // namespace tessera::cpu
