#include "http/conditional.hpp"

#include "http/field_value.hpp"

namespace sluice {
namespace {

bool is_weak(std::string_view tag) {
  return tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/';
}

// The quoted opaque part of an entity tag ("\"abc\""), or "" when `tag` is not one.
std::string_view opaque_tag(std::string_view tag) {
  if (is_weak(tag)) tag.remove_prefix(2);
  if (tag.size() < 2 || tag.front() != '"' || tag.back() != '"') return {};
  if (tag.substr(1, tag.size() - 2).find('"') != std::string_view::npos) return {};
  return tag;
}

bool tags_match(std::string_view candidate, std::string_view etag, TagComparison comparison) {
  const std::string_view mine = opaque_tag(etag);
  if (mine.empty() || opaque_tag(candidate) != mine) return false;
  return comparison == TagComparison::kWeak || (!is_weak(candidate) && !is_weak(etag));
}

}  // namespace

bool etag_matches(std::string_view header, std::string_view etag, TagComparison comparison) {
  std::string_view rest = trim_ows(header);
  if (rest == "*") return !etag.empty();
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    if (tags_match(trim_ows(rest.substr(0, comma)), etag, comparison)) return true;
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return false;
}

Precondition evaluate_preconditions(std::string_view if_match, std::string_view if_none_match,
                                    std::string_view etag) {
  if (!trim_ows(if_match).empty() && !etag_matches(if_match, etag, TagComparison::kStrong)) {
    return Precondition::kFailed;
  }
  if (!trim_ows(if_none_match).empty() && etag_matches(if_none_match, etag, TagComparison::kWeak)) {
    return Precondition::kNotModified;
  }
  return Precondition::kProceed;
}

}  // namespace sluice
