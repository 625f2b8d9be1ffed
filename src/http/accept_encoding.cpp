#include "http/accept_encoding.hpp"

#include <cstddef>
#include <vector>

#include "http/field_value.hpp"

namespace sluice {
namespace {

constexpr int kUnset = -1;
constexpr int kLeastWeight = 1;  // q=0.001

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
std::optional<int> parse_qvalue(std::string_view text) {
  if (text.empty() || (text[0] != '0' && text[0] != '1')) return std::nullopt;
  int value = (text[0] - '0') * 1000;
  if (text.size() == 1) return value;
  if (text[1] != '.' || text.size() > 5) return std::nullopt;
  int scale = 100;
  for (char c : text.substr(2)) {
    if (c < '0' || c > '9') return std::nullopt;
    value += (c - '0') * scale;
    scale /= 10;
  }
  if (value > 1000) return std::nullopt;
  return value;
}

struct Entry {
  std::string_view coding;
  int weight = 1000;
};

// One element "coding *( OWS ; OWS param )"; nullopt when it is empty or its q is malformed.
std::optional<Entry> parse_entry(std::string_view element) {
  std::size_t semicolon = element.find(';');
  Entry entry{trim_ows(element.substr(0, semicolon))};
  if (entry.coding.empty()) return std::nullopt;
  while (semicolon != std::string_view::npos) {
    element.remove_prefix(semicolon + 1);
    semicolon = element.find(';');
    std::string_view param = trim_ows(element.substr(0, semicolon));
    std::size_t equals = param.find('=');
    if (equals == std::string_view::npos || !iequals(trim_ows(param.substr(0, equals)), "q")) continue;
    std::optional<int> weight = parse_qvalue(trim_ows(param.substr(equals + 1)));
    if (!weight) return std::nullopt;
    entry.weight = *weight;
  }
  if (iequals(entry.coding, "x-gzip")) entry.coding = "gzip";
  return entry;
}

}  // namespace

std::optional<std::string_view> choose_content_coding(std::span<const std::string_view> fields,
                                                      std::span<const std::string_view> offered) {
  if (fields.empty()) return "identity";
  std::vector<int> weights(offered.size(), kUnset);
  int identity = kUnset;
  int star = kUnset;
  for (std::string_view field : fields) {
    while (!field.empty()) {
      std::size_t comma = field.find(',');
      std::optional<Entry> entry = parse_entry(field.substr(0, comma));
      field = comma == std::string_view::npos ? std::string_view() : field.substr(comma + 1);
      if (!entry) continue;
      if (entry->coding == "*")
        star = entry->weight;
      else if (iequals(entry->coding, "identity"))
        identity = entry->weight;
      for (std::size_t i = 0; i < offered.size(); ++i) {
        if (iequals(entry->coding, offered[i])) weights[i] = entry->weight;
      }
    }
  }
  // Unlisted, identity is acceptable but least preferred: a client that names a coding, at
  // any weight, can decode it and gets it.
  if (identity == kUnset) identity = star == kUnset ? kLeastWeight : star;
  std::optional<std::size_t> best;
  int best_weight = 0;
  for (std::size_t i = 0; i < offered.size(); ++i) {
    const int weight = weights[i] == kUnset ? (star == kUnset ? 0 : star) : weights[i];
    if (weight > best_weight) {
      best = i;
      best_weight = weight;
    }
  }
  if (best && best_weight >= identity) return offered[*best];
  if (identity > 0) return "identity";
  return std::nullopt;
}

std::optional<std::string_view> choose_content_coding(const HttpRequest& request,
                                                      std::span<const std::string_view> offered) {
  std::vector<std::string_view> fields;
  for (const auto& [name, value] : request.headers) {
    if (iequals(name, "Accept-Encoding")) fields.push_back(value);
  }
  return choose_content_coding(fields, offered);
}

}  // namespace sluice
