// Builders for the architecture families, called by the registry in model.cpp.
#pragma once
#include <memory>
#include <string>

#include "models/model.h"

namespace tessera {

std::unique_ptr<Model> make_llama_model(std::unique_ptr<gguf::Source> file, const std::string& arch,
                                        const ModelOptions& opts);

}  // namespace tessera
