#include "core/s3_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <iterator>
#include <optional>

// quote_text: the loader's quoting, so that a value reads the same in every message whether the
// loader or make_s3_endpoint reports it.
#include "core/config_reader.hpp"
#include "core/utf8.hpp"

namespace sluice {
namespace {

using config_detail::quote_text;

constexpr std::string_view kHttps = "https://";
constexpr std::string_view kHttp = "http://";
constexpr std::size_t kMaxKeyBytes = 1024;  // S3's limit for a whole key

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || is_digit(c);
}

bool is_name_char(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

bool is_control(char c) {
  return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
}

char to_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::ranges::equal(text.substr(0, prefix.size()), prefix,
                            [](char a, char b) { return to_lower(a) == to_lower(b); });
}

// inet_pton rather than a pattern: it is what decides whether the name will be resolved.
bool is_ipv4(std::string_view host) {
  in_addr address{};
  return inet_pton(AF_INET, std::string(host).c_str(), &address) == 1;
}

// `host` is already lower-case, so the label check needs no upper-case letters.
std::string_view host_problem(std::string_view host) {
  if (host.empty()) return "no host";
  if (host.find(':') != std::string_view::npos) {
    return "an IPv6 address must be in brackets, e.g. http://[::1]:9000";
  }
  // All digits and dots is meant as an IPv4 address, never as a (numeric) host name.
  if (std::ranges::all_of(host, [](char c) { return is_digit(c) || c == '.'; })) {
    return is_ipv4(host) ? "" : "invalid IPv4 address";
  }
  if (host.size() > 253) return "host name longer than 253 characters";
  for (std::size_t start = 0; start <= host.size();) {
    std::size_t end = std::min(host.find('.', start), host.size());
    std::string_view label = host.substr(start, end - start);
    if (label.empty()) return "empty label in the host name";
    if (label.size() > 63) return "host name label longer than 63 characters";
    if (!std::ranges::all_of(label,
                             [](char c) { return is_lower_alnum(c) || c == '-' || c == '_'; })) {
      return "the host may hold only letters, digits, '-', '_' and '.'";
    }
    start = end + 1;
  }
  return {};
}

bool valid_port(std::string_view port) {
  return !port.empty() && port.size() <= 5 && std::ranges::all_of(port, is_digit) &&
         std::stoi(std::string(port)) >= 1 && std::stoi(std::string(port)) <= 65535;
}

// "host", "host:port", "[v6]" or "[v6]:port" into `out` (whose `tls` is already set: it picks
// the default port); returns why not, or empty.
std::string_view authority_problem(std::string_view authority, S3Url& out) {
  std::string_view host = authority;
  std::optional<std::string_view> port;
  if (authority.starts_with('[')) {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return "no ']' after the IPv6 address";
    host = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return "unexpected text after ']'";
    if (!rest.empty()) port = rest.substr(1);
    in6_addr address{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &address) != 1) {
      return "invalid IPv6 address";
    }
    out.ip = out.ipv6 = true;
  } else if (std::size_t colon = authority.find(':');
             colon == authority.rfind(':') && colon != std::string_view::npos) {
    // Exactly one ':' is HOST:PORT; more is an unbracketed IPv6 address, which host_problem
    // names.
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  out.host.clear();
  std::ranges::transform(host, std::back_inserter(out.host), to_lower);
  if (!out.ipv6) {
    std::string_view problem = host_problem(out.host);
    if (!problem.empty()) return problem;
    out.ip = is_ipv4(out.host);
  }
  if (port && !valid_port(*port)) return "the port must be a number 1..65535";
  // Normalised ("09000" is 9000) so that the Host header and the default-port test agree.
  out.port = port ? std::to_string(std::stoi(std::string(*port))) : (out.tls ? "443" : "80");
  return {};
}

std::string_view url_problem(std::string_view endpoint, S3Url& out) {
  std::string_view rest;
  if (starts_with_ignoring_case(endpoint, kHttps)) {
    out.tls = true;
    rest = endpoint.substr(kHttps.size());
  } else if (starts_with_ignoring_case(endpoint, kHttp)) {
    out.tls = false;
    rest = endpoint.substr(kHttp.size());
  } else {
    return "expected https://HOST[:PORT] or http://HOST[:PORT]";
  }
  std::size_t end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    return "no user info (credentials come only from the environment)";
  }
  if (tail.find_first_of("?#") != std::string_view::npos) return "no query or fragment allowed";
  // S3Endpoint keeps no base path: a path here would be silently dropped, so it is refused.
  if (!tail.empty() && tail != "/") {
    return "no path allowed (the bucket goes in `bucket`, a folder in it in `prefix`)";
  }
  return authority_problem(authority, out);
}

std::string addressing_word_problem(std::string_view addressing) {
  if (addressing == "auto" || addressing == "path" || addressing == "virtual") return {};
  return "expected one of: auto, path, virtual, got " + quote_text(addressing);
}

}  // namespace

std::string parse_s3_endpoint(std::string_view endpoint, S3Url& out) {
  out = S3Url{};
  std::string_view problem = url_problem(endpoint, out);
  if (problem.empty()) return {};
  return "invalid endpoint " + quote_text(endpoint) + ": " + std::string(problem);
}

std::string s3_endpoint_problem(std::string_view endpoint) {
  S3Url url;
  return parse_s3_endpoint(endpoint, url);
}

std::string s3_aws_endpoint(std::string_view region) {
  return "https://s3." + std::string(region) + ".amazonaws.com";
}

std::string s3_region_problem(std::string_view region, bool aws_default) {
  std::string_view problem;
  if (region.empty() || region.size() > 64) {
    problem = "must be 1 to 64 characters long";
  } else if (aws_default && region == "auto") {
    problem =
        "\"auto\" needs an endpoint (Cloudflare R2's https://ACCOUNT.r2.cloudflarestorage.com);"
        " without one, name the bucket's AWS region, e.g. \"eu-central-1\"";
  } else if (aws_default &&
             !std::ranges::all_of(region, [](char c) { return is_lower_alnum(c) || c == '-'; })) {
    // It becomes part of the host name s3.REGION.amazonaws.com.
    problem = "without an endpoint it names an AWS region: lower-case letters, digits and '-'";
  } else if (!std::ranges::all_of(region, is_name_char)) {
    problem = "may hold only letters, digits, '-' and '_'";
  }
  if (problem.empty()) return {};
  return "invalid region " + quote_text(region) + ": " + std::string(problem);
}

std::string s3_bucket_problem(std::string_view bucket) {
  std::string_view problem;
  if (bucket.size() < 3 || bucket.size() > 63) {
    problem = "must be 3 to 63 characters long";
  } else if (!std::ranges::all_of(
                 bucket, [](char c) { return is_lower_alnum(c) || c == '.' || c == '-'; })) {
    problem = "may hold only lower-case letters, digits, '.' and '-'";
  } else if (!is_lower_alnum(bucket.front()) || !is_lower_alnum(bucket.back())) {
    problem = "must begin and end with a letter or digit";
  } else if (bucket.find("..") != std::string_view::npos) {
    problem = "must not contain \"..\"";
  } else if (is_ipv4(bucket)) {
    problem = "must not be an IP address";
  }
  if (problem.empty()) return {};
  return "invalid bucket name " + quote_text(bucket) + ": " + std::string(problem);
}

std::string s3_prefix_problem(std::string_view prefix) {
  auto invalid = [&](std::string_view problem) {
    return "invalid prefix " + quote_text(prefix) + ": " + std::string(problem);
  };
  if (prefix.empty()) return {};
  // The rules of object keys (storage/object_key.hpp, a layer above), so that PREFIX + a valid
  // key is a valid key.
  if (!prefix.ends_with('/')) return invalid("must end with '/'");
  if (prefix.starts_with('/')) return invalid("must not begin with '/'");
  if (prefix.size() > kMaxKeyBytes) return invalid("longer than 1024 bytes");
  if (!valid_utf8(prefix)) return invalid("not valid UTF-8");
  if (std::ranges::any_of(prefix, is_control)) {
    return invalid("must not contain control characters");
  }
  for (std::size_t start = 0; start < prefix.size();) {
    std::size_t slash = prefix.find('/', start);
    std::string_view segment = prefix.substr(start, slash - start);
    if (segment.empty()) return invalid("must not contain \"//\"");
    if (segment == "." || segment == "..") {
      return invalid("must not contain \".\" or \"..\" segments");
    }
    start = slash + 1;
  }
  return {};
}

std::string s3_addressing_problem(std::string_view addressing, const S3Url& url,
                                  std::string_view bucket) {
  if (std::string problem = addressing_word_problem(addressing); !problem.empty()) return problem;
  if (addressing != "virtual") return {};
  if (url.ip) {
    return "\"virtual\" puts the bucket in the host name, an IP address has none; use \"path\"";
  }
  if (url.tls && bucket.find('.') != std::string_view::npos) {
    return "\"virtual\" with a bucket name holding '.' fails the TLS certificate check; use "
           "\"path\"";
  }
  return {};
}

std::string s3_addressing_problem(std::string_view addressing, std::string_view endpoint,
                                  std::string_view bucket) {
  S3Url url;
  // An invalid endpoint has no host to judge "virtual" by; only the word itself is checked.
  if (!parse_s3_endpoint(endpoint, url).empty()) return addressing_word_problem(addressing);
  return s3_addressing_problem(addressing, url, bucket);
}

}  // namespace sluice
