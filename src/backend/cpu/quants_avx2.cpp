#include "backend/cpu/quants_impl.h"

namespace tessera::cpu {
void fill_avx2_kernels(KernelTable& t) {}
}  // namespace tessera::cpu
