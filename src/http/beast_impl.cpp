// Beast is compiled here once (BOOST_BEAST_SEPARATE_COMPILATION); only src/http uses it.
#include <boost/beast/src.hpp>
