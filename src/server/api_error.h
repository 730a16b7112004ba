// Errors the HTTP API answers with, in OpenAI's shape:
//   {"error": {"message": "...", "type": "...", "param": "..." | null, "code": "..." | null}}
// Handlers throw ApiError; the server turns it into that body with `status`.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace tessera {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string code = {})
      : Error(message), status(status), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string param;  // the request field at fault ("" when none)
  std::string code;   // "" when none

  static ApiError bad_param(const std::string& param, const std::string& message) {
    return ApiError(400, message, param);
  }
};

// The OpenAI error type for an HTTP status ("invalid_request_error", ...).
const char* api_error_type(int status);

// The JSON body for an error; empty param/code become null.
nlohmann::json api_error_body(int status, const std::string& message, const std::string& param = {},
                              const std::string& code = {});

}  // namespace tessera
