#include "s3/s3_endpoint.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <iterator>
#include <optional>
#include <stdexcept>

#include "core/utf8.hpp"

// The checks below are also made when the configuration is loaded (core/config_values.cpp, which
// cannot call into this layer), with the same messages: s3_endpoint_test.cpp runs every rejected
// setting through both and compares.

namespace sluice {
namespace {

constexpr std::string_view kHttps = "https://";
constexpr std::string_view kHttp = "http://";
// AWS's own S3 endpoints (China's included); "auto" addressing puts the bucket in their names.
constexpr std::string_view kAwsSuffixes[] = {".amazonaws.com", ".amazonaws.com.cn"};
constexpr std::size_t kMaxKeyBytes = 1024;  // S3's limit for a whole key

[[noreturn]] void invalid(std::string_view key, const std::string& problem) {
  throw std::invalid_argument("storage." + std::string(key) + ": " + problem);
}

// As the config loader quotes values (config_detail::quote_text), so that both say the same.
std::string quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      std::array<char, 8> escape{};
      std::snprintf(escape.data(), escape.size(), "\\u%04x", static_cast<unsigned>(c));
      out += escape.data();
    } else {
      out += c;
    }
  }
  return out + "\"";
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || is_digit(c);
}

char to_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::ranges::equal(text.substr(0, prefix.size()), prefix,
                            [](char a, char b) { return to_lower(a) == to_lower(b); });
}

bool is_ipv4(std::string_view host) {
  in_addr address{};
  return inet_pton(AF_INET, std::string(host).c_str(), &address) == 1;
}

bool is_aws_host(std::string_view host) {
  return std::ranges::any_of(kAwsSuffixes, [&](std::string_view s) { return host.ends_with(s); });
}

// The parts of an endpoint URL; `host` is lower-case, an IPv6 address without its brackets.
struct Authority {
  bool tls = true;
  std::string host;
  bool ip = false;
  bool ipv6 = false;
  std::string port;
};

std::string_view host_problem(std::string_view host) {
  if (host.empty()) return "no host";
  if (host.find(':') != std::string_view::npos) {
    return "an IPv6 address must be in brackets, e.g. http://[::1]:9000";
  }
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

// "host", "host:port", "[v6]" or "[v6]:port" into `out`; returns why not, or empty.
std::string_view authority_problem(std::string_view authority, Authority& out) {
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
  out.port = port ? std::to_string(std::stoi(std::string(*port))) : (out.tls ? "443" : "80");
  return {};
}

Authority parse_endpoint(std::string_view endpoint) {
  auto fail = [&](std::string_view problem) {
    invalid("endpoint", "invalid endpoint " + quote(endpoint) + ": " + std::string(problem));
  };
  Authority parsed;
  std::string_view rest;
  if (starts_with_ignoring_case(endpoint, kHttps)) {
    rest = endpoint.substr(kHttps.size());
  } else if (starts_with_ignoring_case(endpoint, kHttp)) {
    parsed.tls = false;
    rest = endpoint.substr(kHttp.size());
  } else {
    fail("expected https://HOST[:PORT] or http://HOST[:PORT]");
  }
  std::size_t end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    fail("no user info (credentials come only from the environment)");
  }
  if (tail.find_first_of("?#") != std::string_view::npos) fail("no query or fragment allowed");
  if (!tail.empty() && tail != "/") {
    fail("no path allowed (the bucket goes in `bucket`, a folder in it in `prefix`)");
  }
  std::string_view problem = authority_problem(authority, parsed);
  if (!problem.empty()) fail(problem);
  return parsed;
}

std::string_view bucket_problem(std::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 63) return "must be 3 to 63 characters long";
  if (!std::ranges::all_of(bucket,
                           [](char c) { return is_lower_alnum(c) || c == '.' || c == '-'; })) {
    return "may hold only lower-case letters, digits, '.' and '-'";
  }
  if (!is_lower_alnum(bucket.front()) || !is_lower_alnum(bucket.back())) {
    return "must begin and end with a letter or digit";
  }
  if (bucket.find("..") != std::string_view::npos) return "must not contain \"..\"";
  if (is_ipv4(bucket)) return "must not be an IP address";
  return {};
}

std::string_view prefix_problem(std::string_view prefix) {
  if (prefix.empty()) return {};
  if (!prefix.ends_with('/')) return "must end with '/'";
  if (prefix.starts_with('/')) return "must not begin with '/'";
  if (prefix.size() > kMaxKeyBytes) return "longer than 1024 bytes";
  if (!valid_utf8(prefix)) return "not valid UTF-8";
  if (std::ranges::any_of(
          prefix, [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return "must not contain control characters";
  }
  for (std::size_t start = 0; start < prefix.size();) {
    std::size_t slash = prefix.find('/', start);
    std::string_view segment = prefix.substr(start, slash - start);
    if (segment.empty()) return "must not contain \"//\"";
    if (segment == "." || segment == "..") return "must not contain \".\" or \"..\" segments";
    start = slash + 1;
  }
  return {};
}

std::string_view region_problem(std::string_view region, bool aws_default) {
  if (region.empty() || region.size() > 64) return "must be 1 to 64 characters long";
  if (aws_default) {
    if (region == "auto") {
      return "\"auto\" needs an endpoint (Cloudflare R2's "
             "https://ACCOUNT.r2.cloudflarestorage.com);"
             " without one, name the bucket's AWS region, e.g. \"eu-central-1\"";
    }
    if (!std::ranges::all_of(region, [](char c) { return is_lower_alnum(c) || c == '-'; })) {
      return "without an endpoint it names an AWS region: lower-case letters, digits and '-'";
    }
  }
  if (!std::ranges::all_of(region, [](char c) {
        return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
      })) {
    return "may hold only letters, digits, '-' and '_'";
  }
  return {};
}

bool use_virtual_host(const S3StorageConfig& config, const Authority& authority) {
  auto fail = [](std::string_view problem) {
    invalid("addressing", std::string(problem) + "; use \"path\"");
  };
  if (config.addressing == "path") return false;
  if (config.addressing == "auto") {
    return is_aws_host(authority.host) && config.bucket.find('.') == std::string::npos;
  }
  if (config.addressing != "virtual") {
    invalid("addressing", "expected one of: auto, path, virtual, got " + quote(config.addressing));
  }
  if (authority.ip) fail("\"virtual\" puts the bucket in the host name, an IP address has none");
  if (authority.tls && config.bucket.find('.') != std::string::npos) {
    fail("\"virtual\" with a bucket name holding '.' fails the TLS certificate check");
  }
  return true;
}

}  // namespace

S3Endpoint make_s3_endpoint(const S3StorageConfig& config) {
  const bool aws_default = config.endpoint.empty();
  if (std::string_view problem = region_problem(config.region, aws_default); !problem.empty()) {
    invalid("region", "invalid region " + quote(config.region) + ": " + std::string(problem));
  }
  if (std::string_view problem = bucket_problem(config.bucket); !problem.empty()) {
    invalid("bucket", "invalid bucket name " + quote(config.bucket) + ": " + std::string(problem));
  }
  if (std::string_view problem = prefix_problem(config.prefix); !problem.empty()) {
    invalid("prefix", "invalid prefix " + quote(config.prefix) + ": " + std::string(problem));
  }
  const Authority authority = parse_endpoint(
      aws_default ? "https://s3." + config.region + ".amazonaws.com" : config.endpoint);

  S3Endpoint endpoint;
  endpoint.tls = authority.tls;
  endpoint.port = authority.port;
  endpoint.virtual_hosted = use_virtual_host(config, authority);
  endpoint.bucket = config.bucket;
  endpoint.region = config.region;
  endpoint.prefix = config.prefix;
  endpoint.connect_host =
      endpoint.virtual_hosted ? config.bucket + "." + authority.host : authority.host;
  endpoint.host_header = authority.ipv6 ? "[" + authority.host + "]" : endpoint.connect_host;
  if (authority.port != (authority.tls ? "443" : "80")) {
    endpoint.host_header += ":" + authority.port;
  }
  return endpoint;
}

std::string s3_bucket_path(const S3Endpoint& endpoint) {
  return endpoint.virtual_hosted ? "/" : "/" + endpoint.bucket;
}

std::string s3_object_path(const S3Endpoint& endpoint, std::string_view key) {
  std::string path = endpoint.virtual_hosted ? "/" : "/" + endpoint.bucket + "/";
  path += endpoint.prefix;
  path += key;
  return path;
}

std::string s3_origin(const S3Endpoint& endpoint) {
  return std::string(endpoint.tls ? kHttps : kHttp) + endpoint.host_header;
}

}  // namespace sluice
