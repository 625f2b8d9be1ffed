#include "s3/s3_endpoint.hpp"

#include <algorithm>
#include <stdexcept>

#include "core/s3_address.hpp"

// The rules of the settings are core's (core/s3_address.hpp), which the config loader checks too,
// at load time with the file's line. They are checked again here because an S3StorageConfig need
// not come from a file. The order (region, bucket, prefix, endpoint, addressing) decides at which
// key a configuration with several faults is reported.

namespace sluice {
namespace {

// AWS's own S3 endpoints (China's included); "auto" addressing puts the bucket in their names.
constexpr std::string_view kAwsSuffixes[] = {".amazonaws.com", ".amazonaws.com.cn"};

// A problem from core/s3_address.hpp, at its key.
void check(std::string_view key, const std::string& problem) {
  if (!problem.empty()) throw std::invalid_argument("storage." + std::string(key) + ": " + problem);
}

bool is_aws_host(std::string_view host) {
  return std::ranges::any_of(kAwsSuffixes, [&](std::string_view s) { return host.ends_with(s); });
}

// "auto": virtual-hosted at AWS when the bucket has no '.' (AWS's wildcard certificates cover one
// label), path style elsewhere. `config.addressing` is valid (s3_addressing_problem).
bool use_virtual_host(const S3StorageConfig& config, const S3Url& url) {
  if (config.addressing == "auto") {
    return is_aws_host(url.host) && config.bucket.find('.') == std::string::npos;
  }
  return config.addressing == "virtual";
}

}  // namespace

S3Endpoint make_s3_endpoint(const S3StorageConfig& config) {
  const bool aws_default = config.endpoint.empty();
  check("region", s3_region_problem(config.region, aws_default));
  check("bucket", s3_bucket_problem(config.bucket));
  check("prefix", s3_prefix_problem(config.prefix));
  S3Url url;
  check("endpoint",
        parse_s3_endpoint(aws_default ? s3_aws_endpoint(config.region) : config.endpoint, url));
  check("addressing", s3_addressing_problem(config.addressing, url, config.bucket));

  S3Endpoint endpoint;
  endpoint.tls = url.tls;
  endpoint.port = url.port;
  endpoint.virtual_hosted = use_virtual_host(config, url);
  endpoint.bucket = config.bucket;
  endpoint.region = config.region;
  endpoint.prefix = config.prefix;
  endpoint.connect_host = endpoint.virtual_hosted ? config.bucket + "." + url.host : url.host;
  endpoint.host_header = url.ipv6 ? "[" + url.host + "]" : endpoint.connect_host;
  if (url.port != (url.tls ? "443" : "80")) endpoint.host_header += ":" + url.port;
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
  return (endpoint.tls ? "https://" : "http://") + endpoint.host_header;
}

}  // namespace sluice
