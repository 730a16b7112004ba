// Builders for the families implemented on DecoderModel (decoder.h), one file each,
// called by the registry in model.cpp.
#pragma once
#include <memory>
#include <string>

#include "models/model.h"

namespace tessera {

// Declared through this function type: FamilyBuilder make_x_model;
using FamilyBuilder = std::unique_ptr<Model>(std::unique_ptr<gguf::Source> file,
                                             const std::string& arch, const ModelOptions& opts);

FamilyBuilder make_llama_model;      // llama.cpp: Llama 2/3, SmolLM2, Mistral, Qwen2
FamilyBuilder make_qwen3_model;      // qwen3.cpp
FamilyBuilder make_gemma3_model;     // gemma3.cpp
FamilyBuilder make_mistral_model;    // mistral.cpp: Mistral with a sliding window
FamilyBuilder make_moe_model;        // moe.cpp: Mixtral, Qwen2-MoE, Qwen3-MoE
FamilyBuilder make_phi3_model;       // phi3.cpp
FamilyBuilder make_internlm2_model;  // internlm2.cpp
FamilyBuilder make_chatglm_model;    // chatglm.cpp: ChatGLM2/3 and GLM-4
FamilyBuilder make_baichuan_model;   // baichuan.cpp

}  // namespace tessera
