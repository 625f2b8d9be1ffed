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

std::string hmac_hex(std::string_view key, std::string_view message) {
  HmacSha256 hmac(key);
  std::string out(64, '\0');
  hmac.hex(message, out.data());
  return out;
}

// RFC 4231 test cases 1, 2, 6 (a key longer than the block) and 7.
TEST(HmacSha256, Rfc4231Vectors) {
  EXPECT_EQ(hmac_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hmac_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hmac_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_EQ(hmac_hex(std::string(131, '\xaa'),
                     "This is a test using a larger than block-size key and a larger than "
                     "block-size data. The key needs to be hashed before being used by the HMAC "
                     "algorithm."),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

TEST(HmacSha256, ReusedAndClonedGiveTheSameDigests) {
  HmacSha256 hmac("a key of enough length");
  std::unique_ptr<HmacSha256> copy = hmac.clone();
  auto first = hmac.digest("value");
  hmac.digest("something else");
  EXPECT_EQ(hmac.digest("value"), first);
  EXPECT_EQ(copy->digest("value"), first);
  EXPECT_NE(hmac.digest("value2"), first);
}

TEST(HmacSha256, OneShotAndEmptyKey) {
  EXPECT_EQ(to_hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // HMAC with an empty key and message (a well-known value).
  EXPECT_EQ(to_hex(hmac_sha256("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

// RFC 4648 section 10 test vectors.
TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(to_base64(std::string_view("")), "");
  EXPECT_EQ(to_base64(std::string_view("f")), "Zg==");
  EXPECT_EQ(to_base64(std::string_view("fo")), "Zm8=");
  EXPECT_EQ(to_base64(std::string_view("foo")), "Zm9v");
  EXPECT_EQ(to_base64(std::string_view("foob")), "Zm9vYg==");
  EXPECT_EQ(to_base64(std::string_view("fooba")), "Zm9vYmE=");
  EXPECT_EQ(to_base64(std::string_view("foobar")), "Zm9vYmFy");
  EXPECT_EQ(base64_size(6), 8U);
  EXPECT_EQ(to_base64(std::string_view("\xff\x00\xfe", 3)), "/wD+");
}

}  // namespace
}  // namespace sluice
