// Asio is compiled here once (BOOST_ASIO_SEPARATE_COMPILATION) instead of in every translation
// unit that uses it; core is the lowest layer that runs coroutines. Beast: core/beast_impl.cpp.
#include <boost/asio/impl/src.hpp>
