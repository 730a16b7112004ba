"""JSON Schemas for the structured-output conformance suite: shapes taken from real API and
tool definitions (weather, calendar, e-commerce, GitHub-like issues, CRM, logs, geo,
OpenAPI-style nullable fields, Pydantic output with $defs / anyOf-null), together using
every keyword the grammar compiler supports. Each entry: (name, schema, prompt)."""

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}


def obj(props, required=None, **kw):
    return {"type": "object", "properties": props,
            "required": list(props) if required is None else required,
            "additionalProperties": False, **kw}


SCHEMAS = [
    ("weather", obj({"city": STR, "unit": {"enum": ["celsius", "fahrenheit"]}}),
     "What's the weather in Paris? Answer as JSON."),
    ("person", obj({"name": STR, "age": {"type": "integer", "minimum": 0, "maximum": 150}}),
     "Describe a person as JSON."),
    ("boolean_flag", obj({"enabled": BOOL}), "Is dark mode enabled? JSON."),
    ("null_value", obj({"deleted_at": {"type": "null"}}), "Give a record that was never deleted."),
    ("const_version", obj({"version": {"const": "1.0"}, "ok": BOOL}), "Status JSON."),
    ("enum_mixed", obj({"level": {"enum": [1, 2, 3, "max", None, True]}}), "Pick a level."),
    ("string_lengths", obj({"code": {"type": "string", "minLength": 3, "maxLength": 6}}),
     "Give a short product code."),
    ("pattern_phone", obj({"phone": {"type": "string", "pattern": "^\\+?[0-9]{7,12}$"}}),
     "Give a phone number as JSON."),
    ("pattern_sku", obj({"sku": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"}}),
     "Give a SKU like ABC-1234."),
    ("format_date", obj({"birthday": {"type": "string", "format": "date"}}),
     "When was Ada Lovelace born? JSON with a date."),
    ("format_datetime", obj({"created": {"type": "string", "format": "date-time"}}),
     "When was this created? JSON with an ISO timestamp."),
    ("format_time", obj({"opens": {"type": "string", "format": "time"}}),
     "When does the shop open? JSON with a time."),
    ("format_uuid", obj({"id": {"type": "string", "format": "uuid"}}), "Make a new record id."),
    ("format_email", obj({"email": {"type": "string", "format": "email"}}),
     "Give a contact email."),
    ("format_ipv4", obj({"ip": {"type": "string", "format": "ipv4"}}), "Give a server IP."),
    ("format_uri", obj({"homepage": {"type": "string", "format": "uri"}}), "Give a homepage URL."),
    ("int_range_negative", obj({"temp": {"type": "integer", "minimum": -40, "maximum": 50}}),
     "Temperature in Oslo in winter as JSON."),
    ("int_exclusive", obj({"rating": {"type": "integer", "exclusiveMinimum": 0,
                                      "exclusiveMaximum": 6}}), "Rate the movie 1-5."),
    ("int_min_only", obj({"count": {"type": "integer", "minimum": 10}}), "How many apples?"),
    ("int_max_only", obj({"offset": {"type": "integer", "maximum": -5}}), "A negative offset."),
    ("number_range", obj({"price": {"type": "number", "minimum": 0.5, "maximum": 99.99}}),
     "Price of a book as JSON."),
    ("number_exclusive", obj({"prob": {"type": "number", "exclusiveMinimum": 0,
                                       "exclusiveMaximum": 1}}), "A probability."),
    ("number_free", obj({"lat": NUM, "lon": NUM}), "Coordinates of Paris."),
    ("nullable_openapi", obj({"nickname": {"type": "string", "nullable": True}}),
     "A user's nickname, if any."),
    ("type_list", obj({"value": {"type": ["string", "integer", "null"]}}), "Any value."),
    ("array_of_strings", obj({"tags": {"type": "array", "items": STR}}), "Tags for a photo."),
    ("array_bounds", obj({"top3": {"type": "array", "items": STR, "minItems": 3,
                                   "maxItems": 3}}), "Three favourite colours."),
    ("array_min", obj({"steps": {"type": "array", "items": STR, "minItems": 1}}),
     "Steps to boil an egg."),
    ("array_max", obj({"ids": {"type": "array", "items": INT, "maxItems": 4}}), "Some ids."),
    ("prefix_items", obj({"point": {"type": "array", "prefixItems": [NUM, NUM],
                                    "items": False}}), "A 2-D point."),
    ("prefix_items_more", obj({"row": {"type": "array", "prefixItems": [STR, INT],
                                       "items": BOOL, "maxItems": 4}}), "A table row."),
    ("prefix_items_min", obj({"t": {"type": "array", "prefixItems": [INT, INT, INT],
                                    "minItems": 2, "items": False}}), "A tuple."),
    ("nested_object", obj({"user": obj({"id": INT, "profile": obj({"bio": STR,
                                                                  "links": {"type": "array",
                                                                            "items": STR}})})}),
     "A user with a profile."),
    ("optional_props", obj({"name": STR, "email": STR, "phone": STR}, required=["name"]),
     "A contact; phone optional."),
    ("all_optional", obj({"a": INT, "b": STR, "c": BOOL}, required=[]), "Anything."),
    ("additional_schema", {"type": "object", "properties": {"id": INT}, "required": ["id"],
                           "additionalProperties": {"type": "integer"}},
     "An object with an id and integer counters."),
    ("additional_true", {"type": "object", "properties": {"kind": STR},
                         "additionalProperties": True}, "Some metadata."),
    ("map_of_strings", {"type": "object", "additionalProperties": STR},
     "Translations of hello by language code."),
    ("empty_object", {"type": "object", "properties": {}, "additionalProperties": False},
     "An empty object."),
    ("free_object", {"type": "object"}, "Any JSON object about cats."),
    ("any_of", obj({"contact": {"anyOf": [obj({"email": STR}), obj({"phone": STR})]}}),
     "A contact by email or phone."),
    ("one_of_typed", obj({"shape": {"oneOf": [
        obj({"kind": {"const": "circle"}, "r": NUM}),
        obj({"kind": {"const": "square"}, "side": NUM})]}}), "A shape."),
    ("all_of", {"allOf": [{"type": "object", "properties": {"id": INT}, "required": ["id"]},
                          {"type": "object", "properties": {"name": STR}, "required": ["name"]}]},
     "An entity with id and name."),
    ("all_of_ref", {"$defs": {"base": {"type": "object", "properties": {
        "created": {"type": "string", "format": "date"}}, "required": ["created"]}},
                    "allOf": [{"$ref": "#/$defs/base"},
                              {"properties": {"title": STR}, "required": ["title"]}]},
     "A dated note."),
    ("ref_defs", {"$defs": {"addr": obj({"street": STR, "zip": {"type": "string",
                                                                "pattern": "^[0-9]{5}$"}})},
                  **obj({"home": {"$ref": "#/$defs/addr"}, "work": {"$ref": "#/$defs/addr"}})},
     "Home and work addresses."),
    ("ref_definitions", {"definitions": {"money": obj({"amount": NUM, "currency": {
        "enum": ["EUR", "USD"]}})}, **obj({"total": {"$ref": "#/definitions/money"}})},
     "An invoice total."),
    ("recursive_tree", {"$defs": {"node": obj({"name": STR, "children": {
        "type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}})},
        "$ref": "#/$defs/node"}, "A small folder tree."),
    ("recursive_root", {"type": "object", "properties": {"value": INT, "next": {
        "anyOf": [{"$ref": "#"}, {"type": "null"}]}}, "required": ["value", "next"],
        "additionalProperties": False}, "A linked list of two numbers."),
    ("pydantic_like", {"$defs": {"Item": {"properties": {
        "name": {"title": "Name", "type": "string"},
        "qty": {"title": "Qty", "type": "integer", "minimum": 1}},
        "required": ["name", "qty"], "title": "Item", "type": "object",
        "additionalProperties": False}},
        "properties": {"items": {"items": {"$ref": "#/$defs/Item"}, "title": "Items",
                                 "type": "array"},
                       "note": {"anyOf": [{"type": "string"}, {"type": "null"}],
                                "default": None, "title": "Note"}},
        "required": ["items", "note"], "title": "Order", "type": "object",
        "additionalProperties": False}, "A shopping order."),
    ("calendar_event", obj({"title": STR, "start": {"type": "string", "format": "date-time"},
                            "end": {"type": "string", "format": "date-time"},
                            "attendees": {"type": "array", "items": {
                                "type": "string", "format": "email"}, "maxItems": 3}}),
     "Create a meeting event."),
    ("github_issue", obj({"title": {"type": "string", "maxLength": 80}, "body": STR,
                          "labels": {"type": "array", "items": {
                              "enum": ["bug", "enhancement", "question"]}},
                          "assignee": {"type": ["string", "null"]}}),
     "File an issue about a crash."),
    ("ecommerce_product", obj({"sku": {"type": "string", "pattern": "^[A-Z0-9]{8}$"},
                               "price": {"type": "number", "minimum": 0},
                               "in_stock": BOOL,
                               "dimensions": obj({"w": NUM, "h": NUM, "d": NUM})}),
     "Describe a chair for a shop."),
    ("crm_lead", obj({"company": STR, "size": {"enum": ["1-10", "11-50", "51-200", "200+"]},
                      "score": {"type": "integer", "minimum": 0, "maximum": 100},
                      "contacts": {"type": "array", "minItems": 1, "maxItems": 2,
                                   "items": obj({"name": STR,
                                                 "email": {"type": "string",
                                                           "format": "email"}})}}),
     "A sales lead."),
    ("log_entry", obj({"ts": {"type": "string", "format": "date-time"},
                       "level": {"enum": ["DEBUG", "INFO", "WARN", "ERROR"]},
                       "msg": STR, "code": {"type": "integer", "minimum": 100,
                                            "maximum": 599}}), "An HTTP error log line."),
    ("geo_feature", obj({"type": {"const": "Feature"},
                         "geometry": obj({"type": {"const": "Point"},
                                          "coordinates": {"type": "array",
                                                          "prefixItems": [
                                                              {"type": "number", "minimum": -180,
                                                               "maximum": 180},
                                                              {"type": "number", "minimum": -90,
                                                               "maximum": 90}],
                                                          "items": False, "minItems": 2}}),
                         "properties": {"type": "object"}}), "A GeoJSON point for Paris."),
    ("recipe", obj({"name": STR, "servings": {"type": "integer", "minimum": 1, "maximum": 12},
                    "ingredients": {"type": "array", "items": obj({"item": STR, "grams": NUM}),
                                    "maxItems": 5},
                    "vegan": BOOL}), "A pancake recipe."),
    ("movie_review", obj({"title": STR, "stars": {"type": "integer", "minimum": 1,
                                                  "maximum": 5},
                          "summary": {"type": "string", "maxLength": 120}}),
     "Review The Matrix."),
    ("classification", obj({"label": {"enum": ["positive", "negative", "neutral"]},
                            "confidence": {"type": "number", "minimum": 0, "maximum": 1}}),
     "Classify: 'I love this!'"),
    ("entity_extraction", obj({"people": {"type": "array", "items": STR},
                               "places": {"type": "array", "items": STR}}),
     "Extract entities: 'Alice met Bob in Rome.'"),
    ("function_args_search", obj({"query": STR, "limit": {"type": "integer", "minimum": 1,
                                                           "maximum": 50},
                                  "sort": {"enum": ["relevance", "date"]}},
                                 required=["query"]), "Search arguments for 'llama'."),
    ("translation", obj({"source_lang": {"type": "string", "pattern": "^[a-z]{2}$"},
                         "target_lang": {"type": "string", "pattern": "^[a-z]{2}$"},
                         "text": STR}), "Translate 'bonjour' to English."),
    ("bank_transfer", obj({"iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{4,20}$"},
                           "amount": {"type": "number", "exclusiveMinimum": 0,
                                      "maximum": 10000},
                           "reference": {"type": "string", "maxLength": 35}}),
     "A bank transfer."),
    ("unicode_enum", obj({"greeting": {"enum": ["こんにちは", "héllo", "привет"]}}),
     "Say hello."),
    ("quoted_keys", obj({"a \"quoted\" key": STR, "back\\slash": INT}), "Fill both fields."),
    ("deep_nesting", obj({"a": obj({"b": obj({"c": obj({"d": obj({"e": INT})})})})}),
     "A deeply nested value."),
    ("matrix", obj({"m": {"type": "array", "maxItems": 3,
                          "items": {"type": "array", "items": INT, "maxItems": 3}}}),
     "A 2x2 identity matrix."),
    ("mixed_union", {"anyOf": [obj({"error": STR}), obj({"result": INT})]},
     "Return a result or an error."),
    ("top_level_array", {"type": "array", "items": obj({"k": STR}), "maxItems": 3},
     "A list of key objects."),
    ("top_level_string", {"type": "string", "maxLength": 40}, "Name a colour."),
    ("top_level_enum", {"enum": ["red", "green", "blue"]}, "Pick a colour."),
    ("top_level_int", {"type": "integer", "minimum": 1, "maximum": 9}, "Pick a digit."),
    ("annotations", {"title": "Thing", "description": "A thing", "$schema":
                     "https://json-schema.org/draft/2020-12/schema", "$id": "urn:thing",
                     **obj({"x": {"type": "integer", "default": 3, "examples": [1, 2],
                                  "deprecated": False, "readOnly": True}})}, "A thing."),
]

# Keywords the suite uses, checked by the test so the coverage claim stays true.
REQUIRED_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "enum", "const", "anyOf", "oneOf",
    "allOf", "$ref", "$defs", "definitions", "items", "prefixItems", "minItems", "maxItems",
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "nullable"}


def keywords_used(schema, out=None):
    out = set() if out is None else out
    if isinstance(schema, dict):
        for k, v in schema.items():
            out.add(k)
            if k in ("properties", "$defs", "definitions"):
                for sub in v.values():
                    keywords_used(sub, out)
            else:
                keywords_used(v, out)
    elif isinstance(schema, list):
        for v in schema:
            keywords_used(v, out)
    return out
