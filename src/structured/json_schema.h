// JSON Schema -> GBNF: the grammar of JSON texts valid against a schema.
//
// Correct by construction: every text of the grammar validates (the grammar may be a
// subset of the valid texts: properties come in the schema's order, additional properties
// only where the schema allows them explicitly, numbers without exponents where bounded,
// lengths of runs of digits and whitespace bounded so a model cannot loop in them).
//
// Supported keywords: type (one or a list), properties, required, additionalProperties,
// enum, const, anyOf, oneOf, allOf (of object schemas), $ref (JSON pointers into the
// document: #/$defs/..., #/definitions/..., #, recursion included) with $defs /
// definitions, items, prefixItems, minItems, maxItems, minLength, maxLength, pattern
// (regex.h), format (date, time, date-time, uuid, email, ipv4, uri), minimum, maximum,
// exclusiveMinimum, exclusiveMaximum, nullable (OpenAPI). Annotations (title,
// description, default, examples, $schema, $id, $comment, deprecated, readOnly,
// writeOnly, x-*) are ignored. Any other keyword is a SchemaError naming it: the request
// is refused rather than answered with text the schema would reject.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "structured/grammar.h"

namespace tessera::structured {

class SchemaError : public GrammarError {
 public:
  SchemaError(const std::string& keyword, const std::string& msg)
      : GrammarError(msg), keyword(keyword) {}
  std::string keyword;  // the offending keyword ("" when the schema is malformed)
};

// Throws SchemaError.
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema);

class SchemaConverter;

// Several schemas in one grammar (tool calls: one per function), sharing primitive rules.
class JsonSchemaGrammar {
 public:
  JsonSchemaGrammar();
  ~JsonSchemaGrammar();
  // A GBNF expression for JSON valid against `schema` ($refs resolve within it).
  std::string add(const nlohmann::ordered_json& schema, const std::string& hint);
  // Defines a helper rule (name made unique from `hint`); returns its name.
  std::string rule(const std::string& hint, const std::string& body);
  // Sets the body of a rule made by rule().
  void define(const std::string& name, const std::string& body);
  // The whole grammar: `root ::= root_body` and every rule so far.
  std::string text(const std::string& root_body) const;

 private:
  std::unique_ptr<SchemaConverter> c_;
};

// Any JSON object (response_format json_object).
std::string json_object_gbnf();

// Exactly one of `choices` (guided_choice).
std::string choice_gbnf(const std::vector<std::string>& choices);

}  // namespace tessera::structured
