// Asio's SSL support is compiled here once (BOOST_ASIO_SEPARATE_COMPILATION): only the S3 client
// speaks TLS.
#include <boost/asio/ssl/impl/src.hpp>
