#pragma once

#include <string>
#include <string_view>

#include "core/config.hpp"

namespace sluice {

// Where an S3 request goes and what it signs, from `[storage] kind = "s3"`. Pure functions:
// thread-safe, no network. Invalid settings throw std::invalid_argument naming the key.
struct S3Endpoint {
  bool tls = true;           // https
  std::string connect_host;  // the name or address to resolve and connect to (and TLS SNI)
  std::string port;          // "443", "80", "9000"
  // The Host header (and SigV4's host): "bucket.s3.eu-central-1.amazonaws.com",
  // "127.0.0.1:9000" (the port only when it is not the scheme's default).
  std::string host_header;
  bool virtual_hosted = false;  // bucket in the host name, else the first path segment
  std::string bucket;
  std::string region;
  std::string prefix;  // prepended to keys; empty or ends with '/'
};

// Resolves `config`: an empty endpoint is AWS in the region; "auto" addressing picks
// virtual-hosted for *.amazonaws.com(.cn) endpoints when the bucket is a DNS name (lower-case
// letters, digits, '-' and no '.', 3..63 characters, as TLS wildcard certificates need), path
// style otherwise (IP addresses, localhost, MinIO, R2's account endpoint works with both).
// REQUIRES (else invalid_argument): an http:// or https:// endpoint without path, query or
// user info; a bucket name S3 accepts (3..63 of a-z 0-9 . -); a prefix that is empty or ends
// with '/' and is a valid key prefix.
S3Endpoint make_s3_endpoint(const S3StorageConfig& config);

// The unencoded path of a request for the bucket (ListObjectsV2, DeleteObjects, the
// reachability check): "/" virtual-hosted, "/bucket" path style.
std::string s3_bucket_path(const S3Endpoint& endpoint);
// The unencoded path of an object: the prefix is prepended to `key` ("/bucket/prefix/key" or
// "/prefix/key"). As S3Request::path expects it (s3_signing.hpp).
std::string s3_object_path(const S3Endpoint& endpoint, std::string_view key);
// "https://host[:port]": the start of a presigned URL.
std::string s3_origin(const S3Endpoint& endpoint);

}  // namespace sluice
