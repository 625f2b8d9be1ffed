// Asio's SSL support is compiled here once (BOOST_ASIO_SEPARATE_COMPILATION): the S3 client and
// the server's HTTPS listener ([server.tls]) both use it.
#include <boost/asio/ssl/impl/src.hpp>
