// Beast is compiled here once (BOOST_BEAST_SEPARATE_COMPILATION); src/http (the server) and
// src/s3 (the S3 client) use it. Asio: core/asio_impl.cpp; Asio's SSL: core/asio_ssl_impl.cpp.
#include <boost/beast/src.hpp>
