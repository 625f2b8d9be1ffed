#include "core/sha256.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

std::string hex_of(std::string_view text, std::size_t piece) {
  Sha256 hash;
  for (std::size_t at = 0; at < text.size(); at += piece) hash.update(text.substr(at, piece));
  return to_hex(hash.final());
}

TEST(Sha256Test, KnownAnswersFromFips180) {
  EXPECT_EQ(hex_of("", 1), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_of("abc", 1), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  for (std::size_t piece : {1u, 7u, 64u, 1000u}) {
    EXPECT_EQ(hex_of(two_blocks, piece),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  }
  EXPECT_EQ(hex_of(std::string(1000000, 'a'), 4096),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, Base64IsTheStandardAlphabetWithPadding) {
  Sha256 hash;
  hash.update("abc");
  EXPECT_EQ(to_base64(hash.final()), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
}

}  // namespace
}  // namespace sluice
